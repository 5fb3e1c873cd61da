"""Every slip of tests/test_traps.py, caught by ``cohortbot --lang zh validate`` on the same
line as in English, with a message in Chinese (from the catalog, not the English msgid)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.test_playbook import BASE, line_of

UNTIL = 'days: [2, 3]\n    until: "12:00"\nschedule:'
REMIND = '  - day: 2\n    at: "13:00"\n    remind:\n      track: reading\n      text: 还没晨读的同学抓紧哦\n'
NUDGE = "  - day: 3\n    at: 20:00\n    nudge:\n      track: reading\n      dm: 快来晨读\n"
BLOCK = (
    "    post: |\n      \u3000\u3000欢迎\n      QQ：12345\n      \t第二段\n"
    "  - day：2\n    at: 8:00\n    post: 早\n"
)


def sub(old: str, new: str, extra: str = "") -> str:
    text = BASE.replace(old, new) + extra
    assert text != BASE
    return text


# (id, the playbook, a text on the line the slip is reported on, "warning" or "error")
SLIPS: list[tuple[str, str, str, str]] = [
    ("comma-flow", sub('keywords: ["打卡"]', "keywords: [交作业，作业打卡]"), "交作业", "warning"),
    ("comma-quoted", sub('keywords: ["打卡"]', 'keywords: ["交作业，作业打卡"]'), "交作业", "warning"),
    ("enum-comma", sub('keywords: ["打卡"]', 'keywords: ["交作业、作业打卡"]'), "交作业", "warning"),
    ("comma-block", sub('keywords: ["打卡"]', "keywords: \n      - 交作业，作业打卡"), "交作业", "warning"),
    ("comma-command", BASE + 'commands:\n  progress: ["进度", "我的进度，查进度"]\n', "我的进度", "warning"),
    ("hash-post", sub("    post: 欢迎", "    post: 今晚八点直播 #腾讯会议 123-456"), "#腾讯会议", "warning"),
    (
        "hash-link",
        sub("    post: 欢迎", "    post: 资料 https://pan.baidu.com/s/1x #提取码 8888"),
        "#提取码",
        "warning",
    ),
    (
        "hash-url",
        sub("    post: 欢迎", "    post: 课程链接 # https://example.com/c/1"),
        "课程链接",
        "warning",
    ),
    (
        "hash-url-2sp",
        sub("    post: 欢迎", "    post: 课程链接  # https://example.com/c/1"),
        "课程链接",
        "warning",
    ),
    ("hash-keyword", sub('keywords: ["打卡"]', "keywords:\n      - 打卡 #1"), "打卡 #1", "warning"),
    ("full-braces", sub("post: 欢迎", "post: 欢迎来到｛playbook｝！"), "欢迎来到", "warning"),
    ("half-braces-1", sub("post: 欢迎", 'post: "欢迎来到{playbook｝"'), "欢迎来到", "error"),
    ("half-braces-2", sub("post: 欢迎", 'post: "欢迎来到｛playbook}"'), "欢迎来到", "error"),
    ("cn-double-quotes", sub("post: 欢迎", "post: “欢迎”"), "“欢迎”", "warning"),
    ("cn-single-quotes", sub("post: 欢迎", "post: ‘欢迎’"), "‘欢迎’", "warning"),
    ("cn-quoted-keyword", sub('keywords: ["打卡"]', "keywords: [“打卡”]"), "“打卡”", "warning"),
    ("colon-time", sub('at: "19:30"', "at: 20：00"), "：", "error"),
    ("colon-time-quoted", sub('at: "19:30"', 'at: "20：00"'), "：", "error"),
    (
        "colon-until",
        sub("days: [2, 3]\nschedule:", 'days: [2, 3]\n    until: "12：00"\nschedule:'),
        "：",
        "error",
    ),
    ("colon-day", sub("  - day: 1", "  - day：1"), "：", "error"),
    ("colon-at", sub('    at: "19:30"', '    at："19:30"'), "：", "error"),
    ("colon-name", sub("    name: 正课", "    name：正课"), "：", "error"),
    ("colon-name-2", sub("    name: 晨读", "    name：晨读"), "：", "error"),
    ("colon-days", sub("days: 5", "days：5"), "：", "error"),
    ("colon-post", sub("    post: 欢迎", "    post：欢迎"), "：", "error"),
    (
        "indent-ideographic",
        sub('    keywords: ["打卡"]', '\u3000\u3000keywords: ["打卡"]'),
        '["打卡"]',
        "error",
    ),
    ("indent-mixed", sub('    keywords: ["打卡"]', '  \u3000keywords: ["打卡"]'), '["打卡"]', "error"),
    ("indent-tab", sub('    keywords: ["打卡"]', '\tkeywords: ["打卡"]'), '["打卡"]', "error"),
    ("indent-space-tab", sub('    keywords: ["打卡"]', '  \tkeywords: ["打卡"]'), '["打卡"]', "error"),
    ("note-tab", sub('    keywords: ["打卡"]', '\t# 打卡词\n    keywords: ["打卡"]'), "打卡词", "error"),
    (
        "note-ideographic",
        sub('    keywords: ["打卡"]', '\u3000# 打卡词\n    keywords: ["打卡"]'),
        "打卡词",
        "error",
    ),
    ("unclosed-time", sub('at: "19:30"', 'at: "19:30'), '"19:30', "error"),
    ("unclosed-post", sub("post: 欢迎", 'post: "欢迎'), '"欢迎', "error"),
    ("unclosed-name", sub("    name: 正课", '    name: "正课'), '"正课', "error"),
    ("unclosed-single", sub("    name: 正课", "    name: '正课"), "'正课", "error"),
    ("unclosed-flow", sub('keywords: ["打卡"]', 'keywords: ["打卡]'), '["打卡]', "error"),
    ("closed-by-cn-quote", sub('keywords: ["打卡"]', 'keywords: ["打卡”]'), "打卡”", "error"),
    ("colon-in-text", sub("post: 欢迎", "post: 注意: 今晚开营"), "注意", "error"),
    ("indent-deeper", sub("days: 5", "days: 5\n  timezone: Asia/Shanghai"), "timezone", "error"),
    ("keyword-is-command", sub('keywords: ["晨读"]', 'keywords: ["晨读", "进度"]'), '"进度"', "warning"),
    (
        "keyword-is-listed-command",
        BASE + 'commands:\n  help: ["帮助", "打卡"]\n',
        'keywords: ["打卡"]',
        "warning",
    ),
    ("command-starts-with-keyword", BASE + 'commands:\n  progress: ["打卡进度"]\n', "打卡进度", "warning"),
    ("remind-after-until", sub("days: [2, 3]\nschedule:", UNTIL, REMIND), '"13:00"', "warning"),
    ("nudge-after-until", sub("days: [2, 3]\nschedule:", UNTIL, NUDGE), "20:00", "warning"),
    ("slip-after-block", sub("    post: 欢迎\n", BLOCK), "day：2", "error"),
]

LABEL = {"en": {"error": "error", "warning": "warning"}, "zh": {"error": "错误", "warning": "提醒"}}


def validate(f: Path, language: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--lang", language, "validate", str(f)], env={"COLUMNS": "300"})
    return result.exit_code, result.stderr


def reported(stderr: str, label: str, f: Path) -> list[tuple[int, str, str]]:
    """(line, where, message) of each problem labelled ``label`` (the trap ones)."""
    found = []
    where = r"(?:([A-Za-z0-9_.\[\]-]+): )?"
    for m in re.finditer(rf"^{label} {re.escape(str(f))}:(\d+)(?::\d+)?: {where}(.*)$", stderr, re.M):
        if m.group(2) != "schedule":  # quiet hours: not a slip
            found.append((int(m.group(1)), m.group(2) or "", m.group(3)))
    return found


def outside(message: str) -> str:
    """The message without what it quotes (of the playbook, the fix, or the YAML parser's own
    words, which stay in English in parentheses)."""
    return re.sub(r"[「“\"'（][^」”\"'）]*[」”\"'）]", "", message)


def test_the_slips_are_distinct():
    assert len({text for _, text, _, _ in SLIPS}) == len(SLIPS)


@pytest.mark.parametrize(("text", "needle", "kind"), [s[1:] for s in SLIPS], ids=[s[0] for s in SLIPS])
def test_each_slip_is_caught_on_its_line_in_both_languages(tmp_path: Path, text: str, needle: str, kind: str):
    f = tmp_path / "pb.yaml"
    f.write_text(text, encoding="utf-8")
    line = line_of(text, needle)
    codes, found = {}, {}
    for language in ("en", "zh"):
        codes[language], stderr = validate(f, language)
        found[language] = reported(stderr, LABEL[language][kind], f)
        assert len(found[language]) == 1, stderr
    assert codes["en"] == codes["zh"] == (2 if kind == "error" else 0)
    (en_line, en_where, en), (zh_line, zh_where, zh) = found["en"][0], found["zh"][0]
    assert en_line == zh_line == line
    assert en_where == zh_where
    assert zh != en
    # Said in Chinese: Chinese outside what it quotes of the file, and no English sentence.
    own = outside(zh)
    assert re.search(r"[\u4e00-\u9fff]{2}", own), zh
    assert not re.search(r"\b[a-z]{3,} [a-z]{3,} [a-z]{3,}\b", own), zh
