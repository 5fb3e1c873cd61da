"""The operator's language: locale detection, the catalogs shipped in the package, and the
CLI's errors, warnings and help in Chinese and English."""

from __future__ import annotations

import asyncio
import gettext
import threading
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
    return CliRunner().invoke(
        app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})}, prog_name="cohortbot"
    )


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


FOLDER = "this is a folder, not a file"


def test_a_language_spoken_in_one_thread_is_not_heard_in_another():
    """The console's pages speak their reader's language while a report may be drawn in a
    thread in the process's: neither changes what the other says."""
    i18n.use("zh")
    heard: set[str] = set()
    stop = threading.Event()

    def translating() -> None:
        while not stop.is_set():
            heard.add(i18n._(FOLDER))

    thread = threading.Thread(target=translating)
    thread.start()
    try:
        for _ in range(20_000):
            with i18n.speaking("en"):
                assert i18n._(FOLDER) == FOLDER and i18n.current() == "en"
    finally:
        stop.set()
        thread.join()
        i18n.use("en")
    assert heard == {"这是一个文件夹，不是文件"}


async def test_pages_in_two_languages_at_once_each_speak_their_own():
    async def page(language: str) -> list[str]:
        said = []
        with i18n.speaking(language):
            for _ in range(3):
                await asyncio.sleep(0)  # the other page runs meanwhile
                said.append(i18n._(FOLDER))
                said.append(await asyncio.to_thread(i18n._, FOLDER))  # a thread takes it along
        return said

    en, zh = await asyncio.gather(page("en"), page("zh"))
    assert set(en) == {FOLDER} and set(zh) == {"这是一个文件夹，不是文件"}
    assert i18n.current() == "en" and i18n._(FOLDER) == FOLDER


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
    assert f"ok {f}: 测试营, 2 days, 1 track, 1 item" in en.stdout


def test_help_in_both_languages():
    zh = invoke("--lang", "zh", "validate", "--help")
    assert "检查文件" in zh.stdout and "提醒也算作错误" in zh.stdout
    assert "Check files" not in zh.stdout
    top = invoke("--help", env={"LANG": "zh_CN.UTF-8"})
    assert "8 天微信训练营的运营助手" in top.stdout
    en = invoke("validate", "--help", env={"LANG": "C"})
    assert "Check files; exit 0" in en.stdout and "warnings count as errors" in en.stdout
    # Arguments by their names (typer 0.27+ printed "{files}... <list[Path]>": pinned below it).
    assert "cohortbot validate [OPTIONS] FILES..." in en.stdout and "{files}" not in en.stdout
    assert "用法：cohortbot validate [选项] FILES..." in zh.stdout and "list[Path]" not in zh.stdout


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


def test_usage_errors_in_both_languages():
    zh = invoke("--lang", "zh", "validate")
    assert zh.exit_code == 2
    assert "用法：cohortbot validate [选项]" in zh.stderr
    assert "运行 'cohortbot validate --help' 查看帮助。" in zh.stderr
    assert "错误：缺少参数 FILES。" in zh.stderr
    assert "Usage" not in zh.stderr and "Missing" not in zh.stderr
    wrong = invoke("simulate", "--bogus", env={"LANG": "zh_CN.UTF-8"})
    assert "错误：没有这个选项：--bogus" in wrong.stderr
    typo = invoke("prevew", env={"LANG": "zh_CN.UTF-8"})
    assert "没有这个命令：prevew。可用的命令：validate, schema, preview" in typo.stderr
    en = invoke("--lang", "en", "validate")
    assert en.exit_code == 2
    assert "Usage: cohortbot validate [OPTIONS]" in en.stderr
    assert "Error: missing argument FILES." in en.stderr
    needs = invoke("--lang", "en", "preview", "x.yaml", "--start")
    assert needs.exit_code == 2 and "Error: option --start needs a value." in needs.stderr


def test_help_words_and_command_list_in_chinese():
    top = invoke("--lang", "zh", "--help")
    assert "用法：cohortbot [选项] 命令 [参数]..." in top.stdout
    assert "显示这段帮助后退出。" in top.stdout and "Show this message" not in top.stdout
    # Every command says what it does in the list (click cut Chinese, which has no spaces, to "...").
    listed = top.stdout.split("命令:")[1].splitlines()
    rows = [line.split(maxsplit=1) for line in listed if line.startswith("  ")]
    assert len(rows) >= 7 and all(len(r) == 2 and r[1] not in ("...", "…") for r in rows), rows
    sub = invoke("--lang", "zh", "preview", "--help")
    assert "选项:" in sub.stdout and "[必填]" in sub.stdout and "[默认：Asia/Shanghai]" in sub.stdout


def test_warnings_are_shown_with_the_errors(tmp_path):
    """A Chinese comma in a keyword is told in the same round as an error elsewhere."""
    f = tmp_path / "both.yaml"
    f.write_text(WARNED.replace("day: 1,", "day: 3,"), encoding="utf-8")
    zh = invoke("--lang", "zh", "validate", f)
    assert zh.exit_code == 2
    lines = zh.stderr.splitlines()
    assert lines[0].startswith(f"提醒 {f}:7:") and "中文的「，」不能分隔关键词" in lines[0]
    assert lines[1].startswith(f"错误 {f}:9:")


def test_the_catalog_has_every_text_of_the_code_in_chinese():
    """Every marked text in bot/ and storage/ is in the zh catalog, translated, not fuzzy: a
    text added without its Chinese would reach Chinese operators in English."""
    from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).resolve().parent.parent
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = set()
    for sub in ("bot", "storage"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            root / sub, [("**.py", "python")], keywords=keywords
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    assert len(found) > 300  # the extraction did find the texts
    po = root / "bot" / "locale" / "zh" / "LC_MESSAGES" / "cohortbot.po"
    with po.open("rb") as f:
        catalog = read_po(f)
    missing = sorted(m for m in found if m and m not in catalog)
    assert not missing, f"not in the catalog (run the pybabel commands in README): {missing}"
    untranslated = sorted(
        str(m.id)
        for m in catalog
        if m.id
        and m.id in found
        and (m.fuzzy or not all(m.string if isinstance(m.string, tuple) else [m.string]))
    )
    assert not untranslated, f"no Chinese yet: {untranslated}"
