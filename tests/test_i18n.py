"""The operator's language: locale detection, the catalogs shipped in the package, and the
CLI's errors, warnings and help in Chinese and English."""

from __future__ import annotations

import gettext
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import i18n
from bot.cli import app

BAD = """\
name: 测试营
days: 2
tracks:
  lesson: {name: 早起打卡, days: [1], keywords: ["交作业"]}
schedule:
  - {day: 3, at: "9:00", post: 早上好}
"""
WARNED = """\
name: 测试营
days: 2
tracks:
  lesson:
    name: 早起打卡
    days: [1]
    keywords: [交作业，作业打卡]
schedule:
  - {day: 1, at: "9:00", post: 早上好}
"""


def invoke(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        (None, {}, "en"),
        (None, {"LANG": "zh_CN.UTF-8"}, "zh"),
        (None, {"LANG": "C"}, "en"),
        (None, {"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_TW"}, "zh"),
        (None, {"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        (None, {"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US"}, "zh"),
        ("en", {"LC_ALL": "zh_CN.UTF-8"}, "en"),
        ("zh", {"LANG": "C"}, "zh"),
        (None, {"LANG": "", "LC_ALL": ""}, "en"),
    ],
)
def test_detect(explicit, env, expected):
    assert i18n.detect(explicit, env) == expected


def test_catalog_found_in_the_installed_package():
    mo = resources.files("bot") / "locale" / "zh" / "LC_MESSAGES" / "cohortbot.mo"
    assert mo.is_file()
    zh = gettext.translation("cohortbot", i18n.locale_dir(), languages=["zh"])
    assert zh.gettext("no such file; check the path") == "找不到这个文件，请检查路径"
    assert i18n.translation("en").gettext("no such file; check the path") == "no such file; check the path"


def test_switching_language():
    i18n.use("zh")
    assert i18n._("this is a folder, not a file") == "这是一个文件夹，不是文件"
    assert i18n.current() == "zh"
    i18n.use("en")
    assert i18n._("this is a folder, not a file") == "this is a folder, not a file"


@pytest.mark.parametrize(
    ("args", "env"),
    [(("--lang", "zh"), {}), ((), {"LANG": "zh_CN.UTF-8"}), ((), {"LC_ALL": "zh_CN.UTF-8"})],
)
def test_validate_error_in_chinese(tmp_path, args, env):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD, encoding="utf-8")
    result = invoke(*args, "validate", f, env=env)
    assert result.exit_code == 2
    assert f"错误 {f}:6: schedule[0].day: 第 3 天不在训练营的天数里，请写 1 到 2" in result.stderr
    missing = invoke(*args, "validate", tmp_path / "none.yaml", env=env)
    assert "找不到这个文件，请检查路径" in missing.stderr


def test_validate_error_in_english(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD, encoding="utf-8")
    for args, env in (((), {"LANG": "C"}), (("--lang", "en"), {"LANG": "zh_CN.UTF-8"})):
        result = invoke(*args, "validate", f, env=env)
        assert result.exit_code == 2
        assert f"error {f}:6: schedule[0].day: day 3 is outside the cohort; use 1..2" in result.stderr


def test_validate_warning_and_ok_in_both_languages(tmp_path):
    f = tmp_path / "warned.yaml"
    f.write_text(WARNED, encoding="utf-8")
    zh = invoke("--lang", "zh", "validate", f)
    assert zh.exit_code == 0, zh.output
    assert (
        f"提醒 {f}:7: tracks.lesson.keywords[0]: 「交作业，作业打卡」是一个关键词，不是 2 个：中文的「，」"
        '不能分隔关键词。要写 2 个关键词，请用英文引号括起每个词、用英文逗号隔开：["交作业", "作业打卡"]'
    ) in zh.stderr
    assert f"没问题 {f}：测试营，2 天，1 个打卡项，1 条日程" in zh.stdout
    en = invoke("--lang", "en", "validate", f)
    assert '"交作业，作业打卡" is one keyword, not 2' in en.stderr
    assert f"ok {f}: 测试营, 2 days, 1 tracks, 1 items" in en.stdout


def test_help_in_both_languages():
    zh = invoke("--lang", "zh", "validate", "--help")
    assert "检查文件" in zh.stdout and "提醒也算作错误" in zh.stdout
    assert "Check files" not in zh.stdout
    top = invoke("--help", env={"LANG": "zh_CN.UTF-8"})
    assert "8 天微信训练营的运营助手" in top.stdout
    en = invoke("validate", "--help", env={"LANG": "C"})
    assert "Check files; exit 0" in en.stdout and "warnings count as errors" in en.stdout


def test_bad_lang_value():
    result = invoke("--lang", "fr", "schema")
    assert result.exit_code == 2
    assert "--lang fr: write zh or en" in result.stderr


def test_pydantic_messages_in_chinese(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(BAD.replace("days: 2", "days: [2]"), encoding="utf-8")
    zh = invoke("--lang", "zh", "validate", f)
    assert "这里要写整数" in zh.stderr
    en = invoke("--lang", "en", "validate", f)
    assert "Input should be a valid integer" in en.stderr
