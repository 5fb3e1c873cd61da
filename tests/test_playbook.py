"""Every rule of playbook-format.md, and the line each broken rule is reported on."""

from __future__ import annotations

import json
import re
from datetime import time
from pathlib import Path
from typing import Any

import pytest

from bot import playbook
from bot.yamlfile import InputError, Problem, parse_yaml
from tests.harness import EXAMPLE, SAMPLE

# A small valid playbook; tests append schedule items / sections to it.
BASE = """\
name: 测试营
days: 5
timezone: Asia/Shanghai
tracks:
  lesson:
    name: 正课
    keywords: ["打卡"]
    days: [2, 3, 4]
  reading:
    name: 晨读
    keywords: ["晨读"]
    days: [2, 3]
schedule:
  - day: 1
    at: "19:30"
    post: 欢迎
"""


def parse(text: str) -> playbook.Playbook:
    return playbook.parse(parse_yaml(text, "pb.yaml"))


def problems_of(text: str) -> list[Problem]:
    with pytest.raises(InputError) as info:
        parse(text)
    probs = info.value.problems
    assert probs, "InputError without problems"
    for p in probs:
        assert str(p).startswith(f"pb.yaml:{p.line}: "), str(p)
    return probs


def one_problem(text: str) -> Problem:
    probs = problems_of(text)
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the ``nth`` line containing ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not in text"
    return hits[nth - 1]


def item(body: str) -> str:
    """One more schedule item appended to BASE; ``body`` is its lines, 4-space indented."""
    return BASE + body


# ---------------------------------------------------------------- valid playbooks


def test_base_is_valid():
    pb = parse(BASE)
    assert pb.name == "测试营"
    assert pb.item_ids == ("d1-1930-post",)


def test_example_loads_with_derived_stable_ids():
    pb = parse(EXAMPLE)
    assert pb.name == "Python 入门体验营"
    assert pb.days == 8
    assert pb.timezone == "Asia/Shanghai"
    assert list(pb.tracks) == ["lesson", "reading"]
    assert pb.tracks["reading"].until == time(12, 0)
    assert pb.rewards[0].id == "reading-pack"
    assert pb.schedule[0].post == "【开营仪式】欢迎来到{playbook}！"  # block scalar's newline dropped
    assert pb.schedule[3].nudge is not None and pb.schedule[3].nudge.day == 2
    assert pb.schedule[4].leaderboard is not None and pb.schedule[4].leaderboard.top == 10
    assert pb.item_ids == (
        "d1-1930-post",
        "d2-0730-post",
        "d2-2130-remind-lesson",
        "d3-0900-nudge-lesson",
        "d5-2200-leaderboard-reading",
    )


def test_explicit_id_is_kept():
    text = EXAMPLE.replace('  - day: 1\n    at: "19:30"\n', '  - day: 1\n    id: opening\n    at: "19:30"\n')
    assert text != EXAMPLE
    pb = parse(text)
    assert pb.item_ids[0] == "opening"
    assert pb.item_ids[1:] == (
        "d2-0730-post",
        "d2-2130-remind-lesson",
        "d3-0900-nudge-lesson",
        "d5-2200-leaderboard-reading",
    )


def test_explicit_id_survives_a_time_change():
    text = BASE.replace('  - day: 1\n    at: "19:30"\n', '  - id: welcome\n    day: 1\n    at: "20:00"\n')
    assert parse(text).item_ids == ("welcome",)


def test_editing_an_items_text_keeps_its_derived_id():
    before = parse(EXAMPLE).item_ids
    edited = EXAMPLE.replace("今天的课还没完成的同学抓紧哦 👇", "还差一点点，加油 💪").replace(
        "☀️ 晨读开始啦", "☀️ 早上好，晨读开始啦"
    )
    assert edited != EXAMPLE
    pb = parse(edited)
    assert pb.schedule[2].remind is not None and pb.schedule[2].remind.text == "还差一点点，加油 💪"
    assert pb.item_ids == before


def test_two_items_sharing_day_time_and_kind_get_distinct_ids():
    pb = parse(item('  - day: 1\n    at: "19:30"\n    post: 第二条\n'))
    assert pb.item_ids == ("d1-1930-post", "d1-1930-post-2")


def test_sample_playbook_loads():
    pb = playbook.load(SAMPLE)
    assert pb.days == 8
    assert pb.path == str(SAMPLE)
    assert len(pb.item_ids) == len(pb.schedule) > 10
    assert len(set(pb.item_ids)) == len(pb.item_ids)
    explicit = [(i, it.id) for i, it in enumerate(pb.schedule) if it.id]
    assert explicit, "the sample names its items"
    assert all(pb.item_ids[i] == item_id for i, item_id in explicit)


def test_unquoted_time_is_read_as_a_time_not_base_60():
    # YAML 1.1 reads 19:30 as the sexagesimal integer 1170.
    text = BASE.replace('at: "19:30"', "at: 19:30")
    assert "at: 19:30" in text
    pb = parse(text)
    assert pb.schedule[0].at == time(19, 30)
    assert pb.item_ids == ("d1-1930-post",)


def test_unquoted_time_with_leading_zero_and_until():
    text = BASE.replace('at: "19:30"', "at: 07:05")
    text = text.replace("days: [2, 3]\n", "days: [2, 3]\n    until: 12:00\n")
    pb = parse(text)
    assert pb.schedule[0].at == time(7, 5)
    assert pb.tracks["reading"].until == time(12, 0)


def test_nudge_day_defaults_to_items_day_and_may_equal_it():
    pb = parse(
        item(
            "  - day: 3\n    at: '09:00'\n    nudge:\n      track: lesson\n      dm: 补卡\n"
            "  - day: 3\n    at: '10:00'\n    nudge:\n      track: lesson\n      day: 3\n      dm: 补卡\n"
        )
    )
    assert [it.checked_day for it in pb.schedule[1:]] == [3, 3]


def test_reward_count_equal_to_track_days_is_reachable():
    text = BASE + "rewards:\n  - id: r\n    name: 奖\n    track: lesson\n    count: 3\n    dm: 恭喜\n"
    assert parse(text).rewards[0].count == 3


# ---------------------------------------------------------------- missing fields


@pytest.mark.parametrize("field", ["name", "days", "tracks"])
def test_missing_required_top_level_field(field):
    if field == "tracks":
        text = "name: x\ndays: 5\n"
    else:
        text = "\n".join(line for line in BASE.splitlines() if not line.startswith(f"{field}:")) + "\n"
    p = one_problem(text)
    assert p.line == 1
    assert f"`{field}` is missing" in p.message
    assert "add it" in p.message


@pytest.mark.parametrize("field", ["day", "at"])
def test_missing_item_day_or_at(field):
    text = item("  - day: 2\n    at: '08:00'\n    post: 早\n")
    lines = text.splitlines()
    # drop the field from the second item (and put `post` first so the item still starts a line)
    second = line_of(text, "day: 2")
    body = ["  - post: 早", "    day: 2", "    at: '08:00'"]
    body = [b for b in body if f"{field}:" not in b]
    text = "\n".join([*lines[: second - 1], *body]) + "\n"
    p = one_problem(text)
    assert p.line == second
    assert p.where == "schedule[1]"
    assert f"`{field}` is missing" in p.message


def test_missing_key_in_remind_names_it():
    text = item("  - day: 2\n    at: '21:00'\n    remind:\n      text: 快\n")
    p = one_problem(text)
    assert p.line == line_of(text, "remind:")
    assert p.where == "schedule[1].remind"
    assert "`track` is missing" in p.message


# ---------------------------------------------------------------- unknown keys


@pytest.mark.parametrize(
    ("old", "new", "where", "guess"),
    [
        ("name: 测试营", "nmae: 测试营", "nmae", "name"),
        ("    post: 欢迎", "    psot: 欢迎", "schedule[0].psot", "post"),
        ("timezone: Asia/Shanghai", "timzone: Asia/Shanghai", "timzone", "timezone"),
    ],
)
def test_unknown_key_with_did_you_mean(old, new, where, guess):
    text = BASE.replace(old, new)
    probs = problems_of(text)
    p = next(p for p in probs if p.where == where)
    assert p.line == line_of(text, new.strip())
    assert f"unknown key `{where.split('.')[-1]}`" in p.message
    assert f"did you mean `{guess}`?" in p.message


def test_unknown_key_in_reward_and_commands():
    text = (
        BASE + "rewards:\n  - id: r\n    name: 奖\n    track: lesson\n    count: 1\n    dm: 恭喜\n"
        "    anounce: 公告\ncommands:\n  progres: [进度]\n"
    )
    probs = problems_of(text)
    assert [(p.line, p.where) for p in probs] == [
        (line_of(text, "anounce"), "rewards[0].anounce"),
        (line_of(text, "progres"), "commands.progres"),
    ]
    assert "did you mean `announce`?" in probs[0].message
    assert "did you mean `progress`?" in probs[1].message


def test_unknown_key_in_track_has_did_you_mean():
    text = BASE.replace("days: [2, 3]\n", "days: [2, 3]\n    untill: '12:00'\n")
    p = one_problem(text)
    assert p.line == line_of(text, "untill")
    assert "unknown key `untill`" in p.message
    assert "did you mean `until`?" in p.message


def test_unknown_key_without_close_match_is_a_sentence():
    text = item(
        "  - day: 2\n    at: '09:00'\n    nudge:\n      track: lesson\n      dm: 补\n      text: 补\n"
    )
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "text: 补"), "schedule[1].nudge.text")
    assert re.search(r"^unknown key `text`[.;] ", p.message), p.message
    assert "dm" in p.message


def test_unknown_key_with_block_value_is_reported_on_the_keys_line():
    text = item("  - day: 2\n    at: '21:00'\n    remnd:\n      track: lesson\n      text: 快\n")
    p = one_problem(text)
    assert p.where == "schedule[1].remnd"
    assert "did you mean `remind`?" in p.message
    assert p.line == line_of(text, "remnd:")


def test_bad_track_id_is_reported_on_its_line():
    text = BASE.replace("  lesson:", "  Lesson:").replace("track: lesson", "track: Lesson")
    p = one_problem(text)
    assert p.line == line_of(text, "Lesson:")
    assert "[key]" not in str(p)
    assert "lower-case" in p.message


# ---------------------------------------------------------------- at: "HH:MM"


@pytest.mark.parametrize(
    "value", ['"7:30pm"', '"25:00"', "25:00", '"19:60"', '"24:00"', "1930", '"19:30:15"', '"19.30"', '""']
)
def test_at_must_be_hh_mm(value):
    text = BASE.replace('at: "19:30"', f"at: {value}")
    p = one_problem(text)
    assert p.line == line_of(text, "at: ")
    assert p.where == "schedule[0].at"
    assert '"HH:MM"' in p.message
    assert "24-hour" in p.message


def test_until_must_be_hh_mm():
    text = BASE.replace("days: [2, 3]\n", "days: [2, 3]\n    until: noon\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "until: noon"), "tracks.reading.until")
    assert '"HH:MM"' in p.message


# ---------------------------------------------------------------- days in range


@pytest.mark.parametrize("value", ["true", "yes"])
def test_boolean_is_not_a_day(value):
    text = item(f"  - day: {value}\n    at: '08:00'\n    post: 早\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, f"day: {value}"), "schedule[1].day")


# Past any calendar (date, timedelta or C int): said like a day just past the end.
@pytest.mark.parametrize("day", [0, 6, -1, 10**9, -(10**23)])
def test_item_day_outside_cohort(day):
    text = item(f"  - day: {day}\n    at: '08:00'\n    post: 早\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, f"day: {day}"), "schedule[1].day")
    assert f"day {day} is outside the cohort" in p.message
    assert "use 1..5" in p.message


def test_a_block_under_the_wrong_key_is_quoted_short():
    # Indented under `days:`, a whole block is the value; the message shows its beginning only.
    block = "".join(f"  k{i}: {'y' * 50}\n" for i in range(50))
    text = BASE.replace("days: 5\n", "days:\n" + block)
    p = one_problem(text)
    assert (p.line, p.where) == (2, "days")
    assert "(got {'k0': 'yyy" in p.message and len(p.message) < 150, p.message
    p = one_problem(BASE.replace("  reading:", f"  Reading {'x' * 200}:"))
    assert "is not a valid id" in p.message and len(p.message) < 200, p.message


def test_track_day_outside_cohort_names_each_day():
    text = BASE.replace("days: [2, 3, 4]", "days: [0, 2, 6]")
    probs = problems_of(text)
    assert [(p.line, p.where) for p in probs] == [
        (line_of(text, "days: [0, 2, 6]"), "tracks.lesson.days[0]"),
        (line_of(text, "days: [0, 2, 6]"), "tracks.lesson.days[2]"),
    ]
    assert "use 1..5" in probs[1].message


@pytest.mark.parametrize("day", [10**9, 10**23, -(10**23)])
def test_a_track_day_past_any_calendar(day):
    text = BASE.replace("days: [2, 3, 4]", f"days: [2, {day}]")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, f"days: [2, {day}]"), "tracks.lesson.days[1]")
    assert f"day {day} is outside the cohort" in p.message


def test_nudge_day_outside_cohort():
    text = item("  - day: 3\n    at: '09:00'\n    nudge:\n      track: lesson\n      day: 0\n      dm: 补\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "day: 0"), "schedule[1].nudge.day")
    assert "use 1..5" in p.message


def test_nudge_day_after_items_day():
    text = item("  - day: 2\n    at: '09:00'\n    nudge:\n      track: lesson\n      day: 3\n      dm: 补\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "day: 3"), "schedule[1].nudge.day")
    assert "nudge about day 2 or earlier" in p.message


# ---------------------------------------------------------------- exactly one kind


def test_item_with_no_kind():
    text = item("  - day: 2\n    at: '08:00'\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "day: 2"), "schedule[1]")
    assert "exactly one of post, remind, nudge, leaderboard" in p.message
    assert "it has none" in p.message


def test_item_with_two_kinds():
    text = item("  - day: 2\n    at: '08:00'\n    post: 早\n    leaderboard:\n      track: lesson\n")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "day: 2"), "schedule[1]")
    assert "exactly one of post, remind, nudge, leaderboard" in p.message
    assert "post and leaderboard" in p.message


# ---------------------------------------------------------------- track references


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ("    remind:\n      track: lesons\n      text: 快\n", "schedule[1].remind.track"),
        ("    nudge:\n      track: lesons\n      dm: 补\n", "schedule[1].nudge.track"),
        ("    leaderboard:\n      track: lesons\n", "schedule[1].leaderboard.track"),
    ],
)
def test_unknown_track_in_item(body, where):
    text = item("  - day: 2\n    at: '21:00'\n" + body)
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "track: lesons"), where)
    assert "no track `lesons`" in p.message
    assert "did you mean `lesson`?" in p.message


def test_unknown_track_in_reward():
    text = BASE + "rewards:\n  - id: r\n    name: 奖\n    track: readin\n    count: 1\n    dm: 恭喜\n"
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "track: readin"), "rewards[0].track")
    assert "did you mean `reading`?" in p.message


def test_unknown_track_without_close_match_lists_the_tracks():
    text = item("  - day: 2\n    at: '21:00'\n    leaderboard:\n      track: zzzzzz\n")
    p = one_problem(text)
    assert "tracks are: lesson, reading" in p.message


# ---------------------------------------------------------------- duplicates


def test_duplicate_item_ids():
    text = item(
        "  - id: same\n    day: 2\n    at: '08:00'\n    post: a\n"
        "  - id: same\n    day: 3\n    at: '08:00'\n    post: b\n"
    )
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "id: same", 2), "schedule[2].id")
    assert "already used by schedule[1]" in p.message
    assert "unique" in p.message


def test_duplicate_reward_ids():
    reward = "  - id: pack\n    name: 奖\n    track: lesson\n    count: 1\n    dm: 恭喜\n"
    text = BASE + "rewards:\n" + reward + reward
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "id: pack", 2), "rewards[1].id")
    assert "reward id `pack` is used twice" in p.message


def test_duplicate_yaml_key():
    text = BASE.replace('    at: "19:30"\n', '    at: "19:30"\n    at: "20:00"\n')
    p = one_problem(text)
    assert p.line == line_of(text, 'at: "20:00"')
    assert "`at` appears twice" in p.message
    assert "keep one" in p.message


def test_duplicate_top_level_yaml_key():
    text = BASE + "days: 6\n"
    p = one_problem(text)
    assert p.line == line_of(text, "days: 6")
    assert "`days` appears twice" in p.message


def test_yaml_merge_key_may_be_overridden():
    text = item("  - &morning\n    day: 2\n    at: '07:30'\n    post: 早安\n  - <<: *morning\n    day: 3\n")
    pb = parse(text)
    assert [(it.day, it.post) for it in pb.schedule[1:]] == [(2, "早安"), (3, "早安")]


def test_same_keyword_in_two_tracks():
    text = BASE.replace('keywords: ["晨读"]', 'keywords: ["晨读", "打卡"]')
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, '"晨读", "打卡"'), "tracks.reading.keywords[1]")
    assert "'打卡' also belongs to track `lesson`" in p.message


def test_keyword_prefixes_of_each_other_are_allowed():
    # "longest keyword wins" at check-in time; only an identical keyword is ambiguous.
    text = BASE.replace('keywords: ["晨读"]', 'keywords: ["晨读打卡"]')
    assert parse(text).tracks["reading"].keywords == ["晨读打卡"]


def test_reward_count_unreachable():
    text = BASE + "rewards:\n  - id: r\n    name: 奖\n    track: reading\n    count: 3\n    dm: 恭喜\n"
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "count: 3"), "rewards[0].count")
    assert "can never be reached" in p.message
    assert "2 days" in p.message


# ---------------------------------------------------------------- templates per kind

POST = ("playbook", "day", "total")
REMIND = ("playbook", "day", "track", "done", "total")
NUDGE = ("name", "day", "track", "playbook", "done", "total")
ACK = ("name", "day", "track", "done", "total", "playbook")
REWARD = ("name", "reward", "track", "playbook", "day")
ALL = ("name", "day", "track", "reward", "playbook", "done", "total")


def with_template(kind: str, template: str) -> tuple[str, str]:
    """A playbook whose ``kind`` text is ``template``; returns (text, where)."""
    t = json.dumps(template, ensure_ascii=False)
    if kind == "post":
        return item(f"  - day: 2\n    at: '08:00'\n    post: {t}\n"), "schedule[1].post"
    if kind == "remind":
        return (
            item(f"  - day: 2\n    at: '21:00'\n    remind:\n      track: lesson\n      text: {t}\n"),
            "schedule[1].remind.text",
        )
    if kind == "nudge":
        return (
            item(f"  - day: 3\n    at: '09:00'\n    nudge:\n      track: lesson\n      dm: {t}\n"),
            "schedule[1].nudge.dm",
        )
    if kind == "ack":
        return BASE.replace("days: [2, 3, 4]\n", f"days: [2, 3, 4]\n    ack: {t}\n"), "tracks.lesson.ack"
    if kind in ("dm", "announce"):
        reward = "rewards:\n  - id: r\n    name: 奖\n    track: lesson\n    count: 1\n"
        if kind == "announce":
            reward += "    dm: 恭喜\n"
        return BASE + reward + f"    {kind}: {t}\n", f"rewards[0].{kind}"
    raise AssertionError(kind)


ALLOWED = {"post": POST, "remind": REMIND, "nudge": NUDGE, "ack": ACK, "dm": REWARD, "announce": REWARD}


@pytest.mark.parametrize("kind", list(ALLOWED))
def test_template_may_use_its_placeholders(kind):
    text, _ = with_template(kind, " ".join(f"{{{f}}}" for f in ALLOWED[kind]))
    parse(text)


@pytest.mark.parametrize(
    ("kind", "bad"),
    [(k, f) for k, allowed in ALLOWED.items() for f in ALL if f not in allowed],
)
def test_template_naming_a_placeholder_it_cannot_fill(kind, bad):
    text, where = with_template(kind, f"你好 {{{bad}}}")
    p = one_problem(text)
    assert p.where == where
    assert p.line == line_of(text, f"{{{bad}}}")
    assert f"`{{{bad}}}` cannot be filled here" in p.message
    assert "may use " + ", ".join(f"{{{f}}}" for f in ALLOWED[kind]) in p.message


@pytest.mark.parametrize(
    ("template", "says"),
    [
        ("a { b", "lone '{'"),
        ("a } b", "lone '{' or '}'"),
        ("{name", "write '{{' or '}}'"),
        ("{name.attr}", "`{name.attr}` is not a placeholder"),
        ("{name[0]}", "is not a placeholder"),
        ("{0}", "`{0}` is not a placeholder"),
        ("{}", "`{}` is not a placeholder"),
        ("{name!r}", "may not carry a format"),
        ("{day:>3}", "may not carry a format"),
    ],
)
def test_malformed_template(template, says):
    text, where = with_template("nudge", template)
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "dm: "), where)
    assert says in p.message


def test_escaped_braces_are_allowed():
    text, _ = with_template("post", "{{这不是占位符}} {playbook}")
    assert parse(text).schedule[1].post == "{{这不是占位符}} {playbook}"


# ---------------------------------------------------------------- timezone


def test_unknown_timezone_with_suggestion():
    text = BASE.replace("Asia/Shanghai", "Asia/Shangai")
    p = one_problem(text)
    assert (p.line, p.where) == (3, "timezone")
    assert "unknown time zone 'Asia/Shangai'" in p.message
    assert "did you mean Asia/Shanghai?" in p.message


def test_unknown_timezone_without_close_match():
    p = one_problem(BASE.replace("Asia/Shanghai", "Nowhere"))
    assert p.line == 3
    assert "IANA" in p.message


def test_timezone_is_optional():
    assert parse(BASE.replace("timezone: Asia/Shanghai\n", "")).timezone is None


# ---------------------------------------------------------------- not a playbook at all


def test_invalid_yaml_syntax_reports_its_line():
    text = BASE.replace("post: 欢迎", "post: 注意: 今晚开营")
    p = one_problem(text)
    assert (p.line, p.where) == (line_of(text, "注意"), "")
    assert 'contains ": "' in p.message
    assert 'in English quotes: post: "注意: 今晚开营"' in p.message
    broken = BASE.replace("post: 欢迎", "post: [欢迎")
    assert "not valid YAML" in one_problem(broken).message


def test_invalid_yaml_unclosed_quote():
    text = BASE.replace('at: "19:30"', 'at: "19:30')
    p = one_problem(text)
    assert "not closed" in p.message
    assert p.line == line_of(text, 'at: "19:30')


def test_invalid_yaml_tab_indentation_line():
    text = BASE + "\t- day: 2\n"
    p = one_problem(text)
    assert p.line == len(text.splitlines())
    assert "indented with a tab" in p.message


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file(text):
    p = one_problem(text)
    assert p.line == 1
    assert "it is empty" in p.message


@pytest.mark.parametrize("text", ["- day: 1\n- day: 2\n", "just words\n"])
def test_file_that_is_not_a_mapping(text):
    p = one_problem(text)
    assert p.line == 1
    assert "must be a YAML mapping" in p.message


def test_non_utf8_file(tmp_path: Path):
    f = tmp_path / "gbk.yaml"
    f.write_bytes(BASE.encode("gbk"))
    with pytest.raises(InputError) as info:
        playbook.load(f)
    (p,) = info.value.problems
    assert (p.path, p.line) == (str(f), 1)
    assert "UTF-8" in p.message


def test_utf8_bom_file_loads(tmp_path: Path):
    f = tmp_path / "bom.yaml"
    f.write_bytes(BASE.encode("utf-8-sig"))
    assert playbook.load(f).name == "测试营"


def test_missing_file(tmp_path: Path):
    f = tmp_path / "nope.yaml"
    with pytest.raises(InputError) as info:
        playbook.load(f)
    (p,) = info.value.problems
    assert str(p) == f"{f}:1: no such file; check the path"


def test_load_names_the_file_in_problems(tmp_path: Path):
    f = tmp_path / "pb.yaml"
    f.write_text(BASE.replace('"19:30"', '"7pm"'), encoding="utf-8")
    with pytest.raises(InputError) as info:
        playbook.load(f)
    assert str(info.value).startswith(f"{f}:{line_of(BASE, 'at: ')}: schedule[0].at: ")


# ---------------------------------------------------------------- several problems


def test_several_rule_problems_are_all_reported_sorted_by_line():
    text = (
        BASE.replace("days: [2, 3, 4]", "days: [2, 3, 9]").replace("post: 欢迎", "post: '{name}'")
        + "  - day: 7\n    at: '08:00'\n    remind:\n      track: lessn\n      text: 快\n"
        + "rewards:\n  - id: r\n    name: 奖\n    track: reading\n    count: 5\n    dm: 恭喜\n"
    )
    probs = problems_of(text)
    assert [(p.line, p.where) for p in probs] == [
        (line_of(text, "days: [2, 3, 9]"), "tracks.lesson.days[2]"),
        (line_of(text, "post: '{name}'"), "schedule[0].post"),
        (line_of(text, "day: 7"), "schedule[1].day"),
        (line_of(text, "track: lessn"), "schedule[1].remind.track"),
        (line_of(text, "count: 5"), "rewards[0].count"),
    ]
    assert str(probs[0]) in str(InputError(probs))


def test_several_shape_problems_are_all_reported_sorted_by_line():
    text = BASE.replace("days: 5", "days: many").replace('"19:30"', '"7pm"') + "extra: 1\n"
    probs = problems_of(text)
    assert [(p.line, p.where) for p in probs] == [
        (2, "days"),
        (line_of(text, "at: "), "schedule[0].at"),
        (line_of(text, "extra: 1"), "extra"),
    ]


def test_shape_and_rule_problems_are_reported_together():
    text = BASE.replace("Asia/Shanghai", "Asia/Shangai").replace("days: [2, 3, 4]", "days: [2, 3, 9]")
    probs = problems_of(text)
    assert [(p.line, p.where) for p in probs] == [
        (3, "timezone"),
        (line_of(text, "days: [2, 3, 9]"), "tracks.lesson.days[2]"),
    ]


def test_a_broken_item_is_set_aside_and_the_rest_still_checked():
    # schedule[0] is malformed (no `at`); schedule[1] names a track that does not exist.
    text = EXAMPLE.replace('    at: "19:30"\n', "", 1).replace(
        "      track: lesson\n      text:", "      track: lessons\n      text:"
    )
    probs = problems_of(text)
    wheres = [p.where for p in probs]
    assert "schedule[0]" in wheres
    assert "schedule[2].remind.track" in wheres
    assert [p.line for p in probs] == sorted(p.line for p in probs)
    assert len(probs) == 2  # nothing invented about the item set aside


# ---------------------------------------------------------------- JSON schema


def _check(schema: dict[str, Any], value: Any, root: dict[str, Any], path: str = "") -> list[str]:
    """A small JSON-Schema checker for the keywords the playbook schema uses."""
    errors: list[str] = []
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/$defs/")
        return _check(root["$defs"][name], value, root, path)
    if "anyOf" in schema:
        if all(_check(s, value, root, path) for s in schema["anyOf"]):
            errors.append(f"{path}: matches no alternative")
        return errors
    types = {"object": dict, "array": list, "string": str, "null": type(None), "boolean": bool}
    t = schema.get("type")
    if t == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: not an integer"]
    elif t is not None and not isinstance(value, types[t]):
        return [f"{path}: not {t}"]
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path}: does not match {schema['pattern']}")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: too short")
    if isinstance(value, int) and not schema.get("minimum", value) <= value <= schema.get("maximum", value):
        errors.append(f"{path}: out of range")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: too few items")
        for i, v in enumerate(value):
            errors += _check(schema.get("items", {}), v, root, f"{path}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: `{k}` is required" for k in schema.get("required", []) if k not in value]
        if len(value) < schema.get("minProperties", 0):
            errors.append(f"{path}: too few properties")
        for k, v in value.items():
            if k in props:
                errors += _check(props[k], v, root, f"{path}.{k}")
                continue
            pattern = next((p for p in schema.get("patternProperties", {}) if re.search(p, k)), None)
            if pattern is not None:
                errors += _check(schema["patternProperties"][pattern], v, root, f"{path}.{k}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: `{k}` is not allowed")
    return errors


def _validate(instance: Any) -> list[str]:
    schema = playbook.json_schema()
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return _check(schema, instance, schema)
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


def test_json_schema_is_json_with_the_formats_top_level_properties():
    schema = json.loads(json.dumps(playbook.json_schema()))
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    assert set(schema["properties"]) >= {
        "name",
        "days",
        "timezone",
        "tracks",
        "rewards",
        "commands",
        "schedule",
    }
    assert set(schema["required"]) == {"name", "days", "tracks"}
    assert schema["additionalProperties"] is False
    item_schema = schema["$defs"]["ScheduleItem"]
    assert set(item_schema["required"]) == {"day", "at"}
    assert set(item_schema["properties"]) >= {"day", "at", "id", "post", "remind", "nudge", "leaderboard"}
    at = re.compile(item_schema["properties"]["at"]["pattern"])
    assert at.search("19:30") and at.search("07:30")
    assert not at.search("25:00") and not at.search("7:30pm")


def test_json_schema_validates_the_example_and_sample():
    assert _validate(parse_yaml(EXAMPLE, "x").data) == []
    assert _validate(parse_yaml(SAMPLE.read_text(encoding="utf-8"), "x").data) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('at: "19:30"', 'at: "25:00"'),
        ("name: Python 入门体验营", "nmae: x"),
        ("top: 10", "top: 0"),
        ("days: 8", "days: eight"),
        ("    name: 晨读\n", ""),
    ],
)
def test_json_schema_rejects_what_the_loader_rejects(old, new):
    text = EXAMPLE.replace(old, new, 1)
    assert text != EXAMPLE
    with pytest.raises(InputError):
        parse(text)
    assert _validate(parse_yaml(text, "x").data) != []
