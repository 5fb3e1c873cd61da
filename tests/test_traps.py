"""Slips of a Chinese keyboard in a playbook: each caught on its own line, with the fix in
the operator's words; an error where the file cannot mean anything, a warning where it is
legal YAML but almost surely not meant. Legal styles stay silent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import playbook
from bot.cli import app
from bot.yamlfile import InputError, Problem, parse_yaml
from tests.harness import EXAMPLE, SAMPLE
from tests.test_playbook import BASE, line_of

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def parse(text: str) -> playbook.Playbook:
    return playbook.parse(parse_yaml(text, "pb.yaml"))


def error(text: str) -> Problem:
    """The one error of ``text``."""
    with pytest.raises(InputError) as info:
        parse(text)
    probs = info.value.problems
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


def traps(pb: playbook.Playbook) -> list[Problem]:
    """Its warnings but the quiet-hours ones and those about `ack` and `announce` (not slips)."""
    return [w for w in pb.warnings if w.where != "schedule" and "is used only" not in w.message]


def warning(text: str) -> Problem:
    """The one warning of ``text``, which loads."""
    ws = traps(parse(text))
    assert len(ws) == 1, [str(w) for w in ws]
    return ws[0]


def assert_plain(message: str) -> None:
    """No parser jargon."""
    for jargon in ("<", "expected", "token", "scalar", "mapping", "stream"):
        assert jargon not in message, message


# ---------------------------------------------------------------- one keyword, or two?


@pytest.mark.parametrize(
    "written",
    [
        "[交作业，作业打卡]",
        '["交作业，作业打卡"]',
        '["交作业、作业打卡"]',
        "\n      - 交作业，作业打卡",
    ],
)
def test_a_chinese_comma_inside_a_keyword(written):
    text = BASE.replace('keywords: ["打卡"]', f"keywords: {written}")
    w = warning(text)
    assert w.line == line_of(text, "交作业")
    assert w.where == "tracks.lesson.keywords[0]"
    sep = "、" if "、" in written else "，"
    assert f'"交作业{sep}作业打卡"' in w.message
    assert '["交作业", "作业打卡"]' in w.message


def test_a_chinese_comma_inside_a_command_word():
    text = BASE + 'commands:\n  progress: ["进度", "我的进度，查进度"]\n'
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "我的进度"), "commands.progress[1]")
    assert '["我的进度", "查进度"]' in w.message


def test_commas_between_quoted_keywords_are_fine():
    assert traps(parse(BASE.replace('keywords: ["打卡"]', 'keywords: ["交作业", "作业打卡"]'))) == []


# ---------------------------------------------------------------- " #" cuts the text


@pytest.mark.parametrize(
    ("line", "kept", "dropped"),
    [
        ("    post: 今晚八点直播 #腾讯会议 123-456", "今晚八点直播", "#腾讯会议 123-456"),
        (
            "    post: 资料 https://pan.baidu.com/s/1x #提取码 8888",
            "资料 https://pan.baidu.com/s/1x",
            "#提取码 8888",
        ),
        ("    post: 课程链接 # https://example.com/c/1", "课程链接", "# https://example.com/c/1"),
    ],
)
def test_unquoted_text_cut_by_a_hash(line, kept, dropped):
    text = BASE.replace("    post: 欢迎", line)
    w = warning(text)
    assert (w.line, w.where) == (len(text.splitlines()), "schedule[0].post")
    assert f'"{kept}"' in w.message
    assert f'"{dropped}"' in w.message
    assert f'post: "{kept} {dropped}"' in w.message
    assert "quotes" in w.message


def test_a_hash_in_a_keyword_list_item():
    text = BASE.replace('keywords: ["打卡"]', "keywords:\n      - 打卡 #1")
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "打卡 #1"), "tracks.lesson.keywords[0]")
    assert '"打卡 #1"' in w.message
    assert '- "打卡 #1"' in w.message and '-:' not in w.message


@pytest.mark.parametrize(
    "line",
    [
        '    post: "今晚八点直播 #腾讯会议 123-456"',
        "    post: '今晚八点直播 #腾讯会议'",
        "    post: |\n      今晚八点直播 #腾讯会议 123-456\n      常见报错 #N/A",
        "    post: 欢迎          # a note for the operators",
        "    post: https://example.com/#/page",
        "    post: 第1课#变量",
    ],
)
def test_hashes_that_are_text_or_deliberate_notes_are_fine(line):
    assert traps(parse(BASE.replace("    post: 欢迎", line))) == []


# ---------------------------------------------------------------- full-width braces


def test_full_width_braces_in_a_template():
    text = BASE.replace("post: 欢迎", "post: 欢迎来到｛playbook｝！")
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "欢迎来到"), "schedule[0].post")
    assert "｛playbook｝" in w.message
    assert "{playbook}" in w.message.replace("｛playbook｝", "")


@pytest.mark.parametrize("written", ["{playbook｝", "｛playbook}"])
def test_half_full_width_braces_are_an_error_that_says_so(written):
    text = BASE.replace("post: 欢迎", f'post: "欢迎来到{written}"')
    p = error(text)
    assert (p.line, p.where) == (line_of(text, "欢迎来到"), "schedule[0].post")
    assert written in p.message
    assert "{playbook}" in p.message.replace(written, "")


# ---------------------------------------------------------------- Chinese quotes


@pytest.mark.parametrize(("open_", "close"), [("“", "”"), ("‘", "’")])
def test_a_text_in_chinese_quotes(open_, close):
    text = BASE.replace("post: 欢迎", f"post: {open_}欢迎{close}")
    w = warning(text)
    assert (w.line, w.where) == (len(text.splitlines()), "schedule[0].post")
    assert f"{open_}欢迎{close}" in w.message
    assert 'post: "欢迎"' in w.message


def test_a_keyword_in_chinese_quotes():
    text = BASE.replace('keywords: ["打卡"]', "keywords: [“打卡”]")
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "“打卡”"), "tracks.lesson.keywords[0]")
    assert "“打卡”" in w.message
    assert '["打卡"]' in w.message


def test_chinese_quotes_inside_a_text_are_fine():
    text = BASE.replace("post: 欢迎", "post: 发“打卡”就算完成")
    assert traps(parse(text)) == []


# ---------------------------------------------------------------- full-width colons


@pytest.mark.parametrize(
    ("old", "new", "fixed"),
    [
        ('at: "19:30"', "at: 20：00", '"20:00"'),
        ('at: "19:30"', 'at: "20：00"', '"20:00"'),
        ("days: [2, 3]\nschedule:", 'days: [2, 3]\n    until: "12：00"\nschedule:', '"12:00"'),
    ],
)
def test_a_chinese_colon_in_a_time(old, new, fixed):
    text = BASE.replace(old, new)
    p = error(text)
    assert p.line == line_of(text, "：")
    assert "：" in p.message
    assert fixed in p.message


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ("  - day: 1", "  - day：1", "day"),
        ('    at: "19:30"', '    at："19:30"', "at"),
        ("    name: 正课", "    name：正课", "name"),
        ("    name: 晨读", "    name：晨读", "name"),
        ("days: 5", "days：5", "days"),
        ("    post: 欢迎", "    post：欢迎", "post"),
    ],
)
def test_a_chinese_colon_after_a_key(old, new, key):
    text = BASE.replace(old, new)
    p = error(text)
    assert p.line == line_of(text, "：")
    assert f"{key}：" in p.message
    assert f"{key}: " in p.message
    assert_plain(p.message)


@pytest.mark.parametrize(
    ("indent", "says"),
    [("\u3000\u3000", "full-width space"), ("  \u3000", "full-width space"), ("\t", "tab"), ("  \t", "tab")],
)
def test_indented_with_a_full_width_space_or_a_tab(indent, says):
    text = BASE.replace('    keywords: ["打卡"]', f'{indent}keywords: ["打卡"]')
    p = error(text)
    assert p.line == line_of(text, '["打卡"]')
    assert says in p.message
    assert_plain(p.message)


def test_a_full_width_space_at_the_start_of_a_block_of_text_is_fine():
    text = BASE.replace("    post: 欢迎", "    post: |\n      \u3000\u3000欢迎大家！\n      \t第二段")
    assert traps(parse(text)) == []


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('at: "19:30"', 'at: "19:30', '"19:30'),
        ("post: 欢迎", 'post: "欢迎', '"欢迎'),
        ("    name: 正课", '    name: "正课', '"正课'),
        ("    name: 正课", "    name: '正课", "'正课"),
        ('keywords: ["打卡"]', 'keywords: ["打卡]', '["打卡]'),
    ],
)
def test_a_missing_closing_quote(old, new, needle):
    text = BASE.replace(old, new)
    p = error(text)
    assert p.line == line_of(text, needle)
    assert "clos" in p.message
    assert needle.lstrip("[") in p.message
    assert_plain(p.message)


def test_a_quote_closed_by_a_chinese_quote():
    text = BASE.replace('keywords: ["打卡"]', 'keywords: ["打卡”]')
    p = error(text)
    assert p.line == line_of(text, "打卡”")
    assert "”" in p.message
    assert_plain(p.message)


def test_other_yaml_mistakes_keep_their_line():
    text = BASE.replace("post: 欢迎", "post: 注意: 今晚开营")
    p = error(text)
    assert p.line == line_of(text, "注意")
    assert p.message.endswith('put the whole text in English quotes: post: "注意: 今晚开营"')


# ---------------------------------------------------------------- keywords and commands


def test_a_check_in_keyword_that_is_also_a_command():
    text = BASE.replace('keywords: ["晨读"]', 'keywords: ["晨读", "进度"]')
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, '"进度"'), "tracks.reading.keywords[1]")
    assert '"进度"' in w.message
    assert "progress" in w.message


def test_a_check_in_keyword_equal_to_a_listed_command():
    text = BASE + 'commands:\n  help: ["帮助", "打卡"]\n'
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, 'keywords: ["打卡"]'), "tracks.lesson.keywords[0]")
    assert "`help`" in w.message


def test_a_command_word_that_starts_with_a_check_in_keyword():
    text = BASE + 'commands:\n  progress: ["打卡进度"]\n'
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "打卡进度"), "commands.progress[0]")
    assert '"打卡进度"' in w.message
    assert '"打卡"' in w.message


def test_a_check_in_keyword_longer_than_a_command_is_fine():
    # "进度打卡" is not the whole message "进度": it counts as a check-in.
    text = BASE.replace('keywords: ["晨读"]', 'keywords: ["进度打卡"]')
    assert traps(parse(text)) == []


# ---------------------------------------------------------------- after `until`


REMIND = """\
  - day: 2
    at: "{at}"
    remind:
      track: reading
      text: 还没晨读的同学抓紧哦
"""


def test_a_reminder_after_the_track_closes():
    text = BASE.replace("days: [2, 3]\nschedule:", 'days: [2, 3]\n    until: "12:00"\nschedule:')
    text += REMIND.format(at="13:00")
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, '"13:00"'), "schedule[1].at")
    assert "13:00" in w.message
    assert "12:00" in w.message


def test_a_nudge_after_the_track_closes():
    text = BASE.replace("days: [2, 3]\nschedule:", 'days: [2, 3]\n    until: "12:00"\nschedule:')
    text += "  - day: 3\n    at: 20:00\n    nudge:\n      track: reading\n      dm: 快来晨读\n"
    w = warning(text)
    assert (w.line, w.where) == (line_of(text, "20:00"), "schedule[1].at")


@pytest.mark.parametrize(
    ("at", "extra"),
    [
        ("11:30", ""),  # before it closes
        ("12:00", ""),  # as it closes
        ("23:00", 'day_starts: "04:00"\n'),  # the track closes at 02:00 the night after
    ],
)
def test_a_reminder_before_the_track_closes_is_fine(at, extra):
    until = '"02:00"' if extra else '"12:00"'
    text = extra + BASE.replace("days: [2, 3]\nschedule:", f"days: [2, 3]\n    until: {until}\nschedule:")
    assert traps(parse(text + REMIND.format(at=at))) == []


def test_a_nudge_about_an_earlier_day_is_fine():
    text = BASE.replace("days: [2, 3]\nschedule:", 'days: [2, 3]\n    until: "12:00"\nschedule:')
    text += "  - day: 3\n    at: 20:00\n    nudge:\n      track: reading\n      day: 2\n      dm: 快来晨读\n"
    assert traps(parse(text)) == []


# ---------------------------------------------------------------- legal styles stay silent


def test_legal_styles_load_silently(tmp_path: Path):
    text = (
        BASE.replace('at: "19:30"', "at: 19:30")
        + "  - day: 2\n    at: 8:00\n    post: 早上好，今天读第一章\n"
    )
    f = tmp_path / "pb.yaml"
    f.write_bytes(text.replace("\n", "\r\n").encode("utf-8-sig"))
    pb = playbook.load(f)
    assert [str(w) for w in pb.warnings] == []
    assert [f"{it.at:%H:%M}" for it in pb.schedule] == ["19:30", "08:00"]


@pytest.mark.parametrize("crlf", [False, True])
def test_a_trap_in_a_crlf_file_keeps_its_line(tmp_path: Path, crlf: bool):
    text = BASE.replace("    post: 欢迎", "    post: 今晚八点直播 #腾讯会议")
    f = tmp_path / "pb.yaml"
    f.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode("utf-8-sig"))
    [w] = traps(playbook.load(f))
    assert w.line == len(text.splitlines())
    assert '"#腾讯会议"' in w.message


def test_the_shipped_playbooks_and_the_formats_example_are_silent():
    assert traps(parse(EXAMPLE)) == []
    assert traps(playbook.load(SAMPLE)) == []
    assert traps(playbook.load(EXAMPLES / "excel-5day.yaml")) == []


def test_validate_prints_a_trap_as_a_warning(tmp_path: Path):
    f = tmp_path / "pb.yaml"
    f.write_text(BASE.replace("post: 欢迎", "post: “欢迎”"), encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(f)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"warning {f}:{len(BASE.splitlines())}: schedule[0].post:" in result.stderr
    assert CliRunner().invoke(app, ["validate", "--strict", str(f)]).exit_code == 2


def test_a_slip_after_a_block_of_text_is_found_and_the_text_is_left_alone():
    body = (
        "    post: |\n      \u3000\u3000欢迎\n      QQ：12345\n      \t第二段\n"
        "  - day：2\n    at: 8:00\n    post: 早\n"
    )
    text = BASE.replace("    post: 欢迎\n", body)
    p = error(text)
    assert p.line == line_of(text, "day：2")
    assert "day: 2" in p.message


@pytest.mark.parametrize("indent", ["\t", "\u3000"])
def test_a_note_indented_with_a_tab_or_a_full_width_space(indent):
    text = BASE.replace('    keywords: ["打卡"]', f'{indent}# 打卡词\n    keywords: ["打卡"]')
    p = error(text)
    assert p.line == line_of(text, "打卡词")
    assert_plain(p.message)


def test_a_link_after_a_hash_is_dropped_even_after_two_spaces():
    text = BASE.replace("    post: 欢迎", "    post: 课程链接  # https://example.com/c/1")
    assert '"# https://example.com/c/1"' in warning(text).message
