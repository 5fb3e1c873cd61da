"""bot.scenario: the scenario-format.md example verbatim, event times, and errors with lines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot import plan, scenario
from bot.playbook import Playbook
from bot.scenario import TimedEvent
from bot.yamlfile import InputError, Problem
from tests.harness import EXAMPLE, load_playbook

# The example of ../shared/scenario-format.md, verbatim.
SCENARIO = """\
start: 2026-12-01          # the cohort's day 1 (a date in the playbook's time zone)
room: 训练营 1 班            # optional: the group's name
bot: CohortBot             # optional: the bot's name in the group (default CohortBot)
operators: [op1]           # optional: ids of members who are operators
members:                   # in the group from the start
  - {id: op1, name: 王助教}
  - {id: u01, name: 小明}
  - {id: u02, name: 小红}
events:                    # in any order; "day N HH:MM" in the playbook's time zone
  - {at: "day 2 07:45", from: u01, text: "晨读打卡"}
  - {at: "day 2 20:10", from: u02, text: "@CohortBot 打卡"}
  - {at: "day 3 09:00", join: {id: u09, name: 新同学}}
  - {at: "day 4 12:00", leave: u02}
  - {at: "day 4 12:05", from: u01, dm: true, text: "进度"}     # private message to the bot
"""

HEAD = """\
start: 2026-12-01
members:
  - {id: u01, name: 小明}
  - {id: u02, name: 小红}
events:
"""


@pytest.fixture(scope="module")
def pb() -> Playbook:
    return load_playbook(EXAMPLE)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def line_of(text: str, needle: str) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert hits, f"{needle!r} not in text"
    return hits[0]


def events_of(tmp_path: Path, pb: Playbook, text: str) -> list[TimedEvent]:
    f = tmp_path / "sc.yaml"
    f.write_text(text, encoding="utf-8")
    sc, src = scenario.load(f)
    return scenario.timeline(sc, plan.calendar(pb, sc.start), src)


def problems(tmp_path: Path, pb: Playbook, text: str) -> list[Problem]:
    with pytest.raises(InputError) as info:
        events_of(tmp_path, pb, text)
    probs = info.value.problems
    assert probs
    for p in probs:
        assert str(p).startswith(f"{tmp_path / 'sc.yaml'}:{p.line}: ")
    return probs


def one_problem(tmp_path: Path, pb: Playbook, text: str) -> Problem:
    probs = problems(tmp_path, pb, text)
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


def test_example_loads(tmp_path: Path, pb: Playbook):
    f = tmp_path / "sc.yaml"
    f.write_text(SCENARIO, encoding="utf-8")
    sc, src = scenario.load(f)
    assert sc.start == date(2026, 12, 1)
    assert (sc.room, sc.bot, sc.operators) == ("训练营 1 班", "CohortBot", ["op1"])
    assert [(m.id, m.name) for m in sc.members] == [("op1", "王助教"), ("u01", "小明"), ("u02", "小红")]
    events = scenario.timeline(sc, plan.calendar(pb, sc.start), src)
    assert [(e.at, e.kind, e.member.id, e.text) for e in events] == [
        (utc(2026, 12, 1, 23, 45), "say", "u01", "晨读打卡"),
        (utc(2026, 12, 2, 12, 10), "say", "u02", "@CohortBot 打卡"),
        (utc(2026, 12, 3, 1, 0), "join", "u09", ""),
        (utc(2026, 12, 4, 4, 0), "leave", "u02", ""),
        (utc(2026, 12, 4, 4, 5), "dm", "u01", "进度"),
    ]
    assert events[2].member.name == "新同学"


def test_defaults(tmp_path: Path, pb: Playbook):
    f = tmp_path / "sc.yaml"
    f.write_text("start: 2026-12-01\n", encoding="utf-8")
    sc, _ = scenario.load(f)
    assert (sc.bot, sc.operators, sc.members, sc.events) == ("CohortBot", [], [], [])


@pytest.mark.parametrize(
    ("at", "instant"),
    [
        ('"day 2 07:45"', utc(2026, 12, 1, 23, 45)),
        ("day 2 07:45", utc(2026, 12, 1, 23, 45)),
        ('"DAY 1 00:00"', utc(2026, 11, 30, 16, 0)),
        ('"day 8 23:59"', utc(2026, 12, 8, 15, 59)),
        ('"day 3 9:05:30"', utc(2026, 12, 3, 1, 5, 30)),
        ('"2026-12-02T07:45:00+08:00"', utc(2026, 12, 1, 23, 45)),
        ("2026-12-02T07:45:00+08:00", utc(2026, 12, 1, 23, 45)),  # unquoted: a YAML timestamp
        ('"2026-12-01T23:45:00Z"', utc(2026, 12, 1, 23, 45)),
        ('"2026-12-02T00:45:00+01:00"', utc(2026, 12, 1, 23, 45)),
        ("2026-12-01 10:00:00-05:00", utc(2026, 12, 1, 15, 0)),
    ],
)
def test_event_times_convert_to_the_right_utc_instant(tmp_path: Path, pb: Playbook, at, instant):
    (ev,) = events_of(tmp_path, pb, HEAD + f"  - {{at: {at}, from: u01, text: 打卡}}\n")
    assert ev.at == instant


def test_day_times_use_the_playbooks_time_zone(tmp_path: Path):
    ny = load_playbook(EXAMPLE.replace("Asia/Shanghai", "America/New_York"))
    (ev,) = events_of(tmp_path, ny, HEAD + '  - {at: "day 2 07:45", from: u01, text: 打卡}\n')
    assert ev.at == utc(2026, 12, 2, 12, 45)  # EST is UTC-5 in December


def test_events_are_sorted_by_time_keeping_file_order_for_ties(tmp_path: Path, pb: Playbook):
    text = HEAD + (
        '  - {at: "day 3 08:00", from: u02, text: 第三}\n'
        '  - {at: "day 2 08:00", from: u01, text: 第一}\n'
        '  - {at: "2026-12-03T08:00:00+08:00", from: u01, text: 第三之二}\n'
        '  - {at: "day 2 09:00", from: u02, text: 第二}\n'
    )
    assert [e.text for e in events_of(tmp_path, pb, text)] == ["第一", "第二", "第三", "第三之二"]


def test_joined_member_can_speak_and_leave(tmp_path: Path, pb: Playbook):
    text = HEAD + (
        '  - {at: "day 3 09:00", join: {id: u09, name: 新同学, alias: 小新}}\n'
        '  - {at: "day 3 09:10", from: u09, text: 打卡}\n'
        '  - {at: "day 4 09:00", leave: u09}\n'
    )
    events = events_of(tmp_path, pb, text)
    assert [(e.kind, e.member.id) for e in events] == [("join", "u09"), ("say", "u09"), ("leave", "u09")]
    assert events[0].member.alias == "小新"


# ---------------------------------------------------------------- errors with lines


def test_unknown_member_in_from(tmp_path: Path, pb: Playbook):
    text = HEAD + (
        '  - {at: "day 2 08:00", from: u01, text: 打卡}\n  - {at: "day 2 09:00", from: u99, text: 打卡}\n'
    )
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (line_of(text, "u99"), "events[1].from")
    assert "no member 'u99'" in p.message
    assert "list them under `members`" in p.message


def test_unknown_member_in_leave(tmp_path: Path, pb: Playbook):
    text = HEAD + '  - {at: "day 2 08:00", leave: u98}\n'
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (line_of(text, "u98"), "events[0].leave")
    assert "no member 'u98'" in p.message


@pytest.mark.parametrize(
    ("events", "when"),
    [
        (
            '  - {at: "day 2 08:00", from: u09, text: 打卡}\n'
            '  - {at: "day 3 09:00", join: {id: u09, name: 新}}\n',
            "day 2 08:00",
        ),
        (
            '  - {at: "day 2 09:00", from: u02, text: 打卡}\n  - {at: "day 2 08:00", leave: u02}\n',
            "day 2 09:00",
        ),
    ],
)
def test_message_from_someone_not_in_the_group_at_that_time(tmp_path: Path, pb: Playbook, events, when):
    # Caught here: a rehearsal must not count a check-in from someone outside the group.
    text = HEAD + events
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (line_of(text, "from:"), "events[0].from")
    assert f"not in the group at {when}" in p.message


def test_leaving_twice(tmp_path: Path, pb: Playbook):
    text = HEAD + '  - {at: "day 2 08:00", leave: u02}\n  - {at: "day 3 08:00", leave: u02}\n'
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (7, "events[1].leave")
    assert "not in the group at day 3 08:00" in p.message


@pytest.mark.parametrize(
    ("event", "has"),
    [
        ('{at: "day 3 09:00", join: {id: u09, name: 新}, from: u01, text: hi}', "from and join"),
        ('{at: "day 3 09:00", from: u01, text: hi, leave: u02}', "from and leave"),
        ('{at: "day 3 09:00", text: hi}', None),
    ],
)
def test_event_needs_exactly_one_shape(tmp_path: Path, pb: Playbook, event, has):
    text = HEAD + f"  - {event}\n"
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (len(text.splitlines()), "events[0]")
    assert "exactly one of `from` (with `text`), `join` or `leave`" in p.message
    if has:
        assert f"(it has {has})" in p.message


def test_message_event_needs_text(tmp_path: Path, pb: Playbook):
    text = HEAD + '  - {at: "day 3 09:00", from: u01}\n'
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (6, "events[0]")
    assert "needs `text`" in p.message


@pytest.mark.parametrize(
    "at",
    [
        '"day 9 00:00"',
        '"day 0 23:59"',
        '"2026-11-30T23:59:00+08:00"',
        '"2026-12-09T00:00:00+08:00"',
        '"2026-12-08T16:00:00Z"',
    ],
)
def test_event_time_outside_the_cohort(tmp_path: Path, pb: Playbook, at):
    text = HEAD + f"  - {{at: {at}, from: u01, text: 打卡}}\n"
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (6, "events[0].at")
    assert "outside the cohort" in p.message
    assert "day 8 23:59" in p.message


@pytest.mark.parametrize(
    ("at", "says"),
    [
        ('"day 2 25:10"', "no such time of day"),
        ('"day 2 07:60"', "no such time of day"),
        ('"tomorrow"', 'write "day 2 07:45" or "2026-12-02T07:45:00+08:00"'),
        ('"day two 07:45"', "is not a time"),
        ('"2 07:45"', "is not a time"),
        # pydantic would read a number as seconds since 1970: "outside the cohort", or inside it.
        ("5", 'is not a time; write "day 2 07:45"'),
        ("1796169600", 'is not a time; write "day 2 07:45"'),
        ("true", 'is not a time; write "day 2 07:45"'),
    ],
)
def test_bad_at_string(tmp_path: Path, pb: Playbook, at, says):
    text = HEAD + f"  - {{from: u01, text: 打卡, at: {at}}}\n"
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (6, "events[0].at")
    assert says in p.message


@pytest.mark.parametrize("at", ['"2026-12-02T07:45:00"', "2026-12-02T07:45:00", "2026-12-02 07:45:00"])
def test_iso_without_offset(tmp_path: Path, pb: Playbook, at):
    text = HEAD + f"  - {{from: u01, text: 打卡, at: {at}}}\n"
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (6, "events[0].at")
    assert "offset" in p.message
    assert "+08:00" in p.message


def test_several_event_problems_are_reported_sorted_by_line(tmp_path: Path, pb: Playbook):
    text = HEAD + (
        '  - {at: "day 2 08:00", from: u01, text: 打卡}\n'
        '  - {at: "day 9 08:00", from: u01, text: 打卡}\n'
        '  - {at: "day 2 08:00", from: nobody, text: 打卡}\n'
    )
    probs = problems(tmp_path, pb, text)
    assert [(p.line, p.where) for p in probs] == [(7, "events[1].at"), (8, "events[2].from")]


def test_missing_start(tmp_path: Path):
    f = tmp_path / "sc.yaml"
    text = SCENARIO.replace("start: 2026-12-01", "# start: 2026-12-01")
    f.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        scenario.load(f)
    (p,) = info.value.problems
    assert p.line == 2  # the mapping begins after the commented-out line
    assert "`start` is missing" in p.message
    assert "2026-12-01" in p.message


def test_bad_start(tmp_path: Path):
    f = tmp_path / "sc.yaml"
    f.write_text(SCENARIO.replace("start: 2026-12-01", "start: next tuesday"), encoding="utf-8")
    with pytest.raises(InputError) as info:
        scenario.load(f)
    (p,) = info.value.problems
    assert (p.line, p.where) == (1, "start")


@pytest.mark.parametrize("start", ["2026-12-32", "1795996800"])  # a number: seconds since 1970
def test_impossible_start_date(tmp_path: Path, start: str):
    f = tmp_path / "sc.yaml"
    f.write_text(SCENARIO.replace("start: 2026-12-01", f"start: {start}"), encoding="utf-8")
    with pytest.raises(InputError) as info:
        scenario.load(f)
    (p,) = info.value.problems
    assert (p.line, p.where) == (1, "start")
    assert "YYYY-MM-DD" in p.message


def test_unknown_event_key(tmp_path: Path, pb: Playbook):
    f = tmp_path / "sc.yaml"
    text = SCENARIO.replace("dm: true", "dn: true")
    f.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        scenario.load(f)
    (p,) = info.value.problems
    assert (p.line, p.where) == (line_of(text, "dn: true"), "events[4].dn")
    assert "unknown key `dn`" in p.message


def test_unknown_event_key_suggests_from(tmp_path: Path):
    f = tmp_path / "sc.yaml"
    text = SCENARIO.replace("from: u02", "form: u02")
    f.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        scenario.load(f)
    (p,) = info.value.problems
    assert "did you mean `from`?" in p.message
    assert "sender" not in p.message


def test_duplicate_member_id(tmp_path: Path, pb: Playbook):
    text = HEAD.replace("{id: u02, name: 小红}", "{id: u01, name: 小红}")
    text += '  - {at: "day 2 08:00", leave: u01}\n'
    p = one_problem(tmp_path, pb, text)
    assert (p.line, p.where) == (4, "members[1].id")
    assert "listed twice" in p.message
