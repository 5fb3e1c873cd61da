"""`cohortbot report`: a cohort played through the whole bot with known check-ins, reminders
and messages, its figures worked out by hand below and compared with compute(); the
terminal, the xlsx and the CSV files show those same numbers; bad input is one line and
exit 2, hostile names stay text; the demo's report matches the demo's own tables; the PNG
has Chinese glyphs and the HTML page draws its charts offline in Chromium."""

from __future__ import annotations

import csv
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from bot import i18n
from bot.cli import app
from bot.conversions import FINISHED, MISSED, NEVER, NOT_FINISHED, REACHED, Rate
from bot.report import ACTIVE, KEY, LEFT, LURKER, OCCASIONAL, Report, ReportError, Thresholds, compute
from bot.report_charts import find_font, missing, write_html, write_png
from bot.report_views import tables
from storage import repo
from tests.harness import Harness, members

ENV = {"COLUMNS": "80"}
CHROMIUM = "/usr/bin/chromium"

THREE_DAYS = """\
name: 三日营
days: 3
timezone: Asia/Shanghai
tracks:
  lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3]}
  read: {name: 晨读, keywords: ["晨读"], days: [2, 3], until: "12:00"}
rewards:
  - {id: pack, name: 大礼包, track: lesson, count: 2, dm: "{name} 得到{reward}"}
commands:
  progress: ["进度"]
  leaderboard: ["排行榜"]
  today: ["今日安排"]
  help: ["帮助"]
  mute: ["免打扰"]
  leave: ["请假"]
schedule:
  - {day: 1, at: "20:00", remind: {track: lesson, text: "还没打卡的同学抓紧"}}
  - {day: 2, at: "09:00", nudge: {track: lesson, day: 1, dm: "{name}，昨天的课还没完成"}}
survey:
  id: intake
  start: {day: 2, at: "10:00"}
  link: https://wj.qq.com/s/1
  questions:
    - {text: 你的 Python 水平？, choices: [零基础, 学过一点, 能写小程序]}
    - text: 你想用 Python 做什么？
"""
PEOPLE = members(*(f"u{i}:小{n}" for i, n in enumerate("一二三四五六", 1)), "op1:王老师")
LIMITS = Thresholds(active_min_messages=3, key_members=1)
JOINING = {"u7": "小七", "u8": "小八"}


def invoke(*args: str | Path, env: dict[str, str] = ENV):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


async def play(h: Harness) -> None:
    """The scenario the expected figures below are worked out from. u8 joins after the
    day-1 reminder, never speaks and is no friend of the account (its nudge is refused, so it
    is not counted as nudged, and no reminder reached it). The questionnaire starts on day 2
    at 10:00; the operator marks four members enrolled at the end."""
    h.group.strangers = {"u8"}
    steps = [
        ("day 1 09:00", "u1", "打卡"),
        ("day 1 10:00", "u2", "打卡"),
        ("day 1 11:00", "u3", "你好"),
        ("day 1 11:05", "u3", "老师好"),
        ("day 1 11:10", "u3", "请问作业在哪"),
        ("day 1 12:00", "dm u5", "免打扰"),  # private: muted, and not a group message
        ("day 1 13:00", "op1", "大家好"),  # an operator: never counted
        # 20:00 the reminder @-mentions u3, u4, u6 (u5 is muted)
        ("day 1 20:30", "join u8", ""),
        ("day 1 20:30", "u3", "打卡"),  # within 2 h of it
        ("day 1 21:00", "u5", "打卡"),  # not reminded, nothing done before: "others", in 2 h
        ("day 1 23:00", "u6", "打卡"),  # 3 h after it: not within 2 h
        ("day 2 08:00", "u1", "晨读"),
        # 09:00 the nudge about day 1 goes to u4 (and to u8, refused)
        ("day 2 10:00", "u2", "晨读"),  # one of the others, within 2 h
        # 10:00 the questionnaire: privately to u1-u6, the link in the group for u8
        ("day 2 10:30", "u4", "打卡"),  # nudged, within 2 h
        ("day 2 11:00", "dm u1", "2"),
        ("day 2 11:01", "dm u1", "数据分析"),  # done
        ("day 2 11:10", "dm u2", "1"),
        ("day 2 11:11", "dm u2", "自动化办公"),  # done
        ("day 2 11:20", "dm u3", "学过一点"),  # by its text
        ("day 2 11:30", "dm u5", "3"),
        ("day 2 12:00", "join u7", ""),  # asked at once; never answers
        ("day 2 12:01", "u7", "大家好"),
        ("day 2 13:00", "u3", "晨读"),  # too late for today's reading: not counted, but said
        ("day 2 20:00", "u1", "打卡"),  # second lesson: the reward
        ("day 2 20:10", "u2", "打卡"),  # the reward
        ("day 2 20:20", "u7", "打卡"),
        ("day 3 08:00", "u1", "晨读"),
        ("day 3 08:30", "u4", "请假"),  # leave for day 3 (a command, in the group)
        ("day 3 10:00", "leave u6", ""),
        ("day 3 20:00", "u1", "打卡"),
        ("day 3 21:00", "u3", "打卡"),
        *(("day 3 22:00", "dm op1", f"报名 {name}") for name in ("小一", "小二", "小四", "小八")),
    ]
    for at, who, text in steps:
        await h.until(at)
        if who.startswith("dm "):
            await h.dm(who[3:], text)
        elif who.startswith("join "):
            await h.group.join(members(f"{who[5:]}:{JOINING[who[5:]]}")[0])
        elif who.startswith("leave "):
            await h.group.leave(who[6:])
        else:
            await h.say(who, text)
    await h.until("day 4 00:00")
    await h.settle()


@pytest.fixture
async def played(harness, tmp_path) -> tuple[Report, Path]:
    db = tmp_path / "bot.db"
    h = await harness(
        THREE_DAYS, people=PEOPLE, operators=("op1",), db_url=f"sqlite:///{db}", quiet_hours=None
    )
    await play(h)
    with h.bot.db.connect() as conn:
        report = compute(conn, "c1", h.clock.now(), h.run.playbook, LIMITS)
    await h.stop()
    return report, db


def ids(people) -> list[str]:
    return [p.member_id for p in people]


# --- the figures, by hand ---------------------------------------------------------------------


async def test_the_figures_are_those_worked_out_by_hand(played):
    r, _db = played
    assert (r.days, r.last_day, r.today_open, r.name, r.in_group_now) == (3, 3, False, "三日营", 7)

    # In the group when each day closes: u1-u6 and u8 (7); u7 joins on day 2 (8); u6 leaves
    # on day 3 (7).
    funnel = [(f.day, f.track, f.done, f.in_group, f.rate) for f in r.funnel]
    assert funnel == [
        (1, "正课", 5, 7, 71.4),  # u1 u2 u3 u5 u6
        (2, "正课", 4, 8, 50.0),  # u4 u1 u2 u7
        (2, "晨读", 2, 8, 25.0),  # u1 u2 (u3 too late)
        (3, "正课", 2, 7, 28.6),  # u1 u3
        (3, "晨读", 1, 7, 14.3),  # u1
    ]
    assert r.completion() == round(100 * 14 / 37, 1)

    hours = dict(enumerate(r.hours))
    assert {h: n for h, n in hours.items() if n} == {8: 2, 9: 1, 10: 3, 20: 5, 21: 2, 23: 1}

    # Active: a group message or a check-in. Day 1: u1 u2 u3 u5 u6 (8 messages: u3 said 4);
    # day 2: u1 u2 u3 u4 u7 (8); day 3: u1 u3 u4 (4). Next day: 3 of 5, then 3 of 5.
    daily = [r2.figures() for r2 in r.daily]
    assert daily == [
        (7, 5, 71.4, 8, 1.1, 5, 3, 60.0),
        (8, 5, 62.5, 8, 1.0, 6, 3, 60.0),
        (7, 3, 42.9, 4, 0.6, 3, None, None),
    ]

    remind, nudge = r.reminders
    assert (remind.kind, remind.day, f"{remind.at:%H:%M}") == ("remind", 1, "20:00")
    # @: u3 u4 u6 (u8 joins at 20:30), u3 in 2 h; others: u5 (muted), in 2 h.
    assert remind.figures() == (3, 1, 33.3, 1, 1, 100.0)
    # Nudged and sent: u4, in 2 h; others: u2 u3 u5 u6 and u8, whose nudge was refused (u1
    # had read, u7 was not there yet); u2 in 2 h.
    assert (nudge.kind, nudge.day) == ("nudge", 2)
    assert nudge.figures() == (1, 1, 100.0, 5, 1, 20.0)

    # Messages + check-ins: u1 5+5, u3 6+2, u2 3+3 have 3 messages or more; key: 1.
    assert ids(r.tier(KEY)) == ["u1"]
    assert ids(r.tier(ACTIVE)) == ["u3", "u2"]
    assert ids(r.tier(OCCASIONAL)) == ["u4", "u5", "u7"]
    assert ids(r.tier(LURKER)) == ["u8"]

    (pack,) = r.rewards
    assert (pack.reward, ids(pack.people)) == ("大礼包", ["u1", "u2", "u3"])  # u3: days 1 and 3
    lesson, read = r.streaks
    assert (lesson.track, lesson.days, lesson.full, lesson.longest, ids(lesson.holders)) == (
        "正课",
        3,
        1,
        3,
        ["u1"],
    )
    assert (read.days, read.full, read.longest, ids(read.holders)) == (2, 1, 2, ["u1"])
    assert (ids(r.muted), ids(r.unreachable), ids(r.left)) == (["u5"], ["u8"], ["u6"])

    rows = {m.member_id: m for m in r.members}
    assert r.grid == (("正课", 1), ("正课", 2), ("正课", 3), ("晨读", 2), ("晨读", 3))
    assert rows["u4"].statuses == ("missed", "done", "leave", "missed", "leave")
    assert rows["u7"].statuses == ("", "done", "missed", "missed", "missed")
    assert rows["u6"].statuses == ("done", "missed", "", "missed", "")
    # Streaks now (day 3 closed) and longest, per track; u2 missed day 3's lesson.
    assert rows["u1"].streaks == ((3, 3), (2, 2)) and rows["u2"].streaks == ((0, 2), (0, 1))
    assert (rows["u1"].messages, rows["u1"].checkins, rows["u1"].rewards) == (5, 5, ("大礼包",))
    assert (rows["u6"].present, rows["u6"].tier, rows["u8"].reachable) == (False, "", False)
    assert [m.member_id for m in r.members if m.enrolled] == ["u1", "u2", "u4", "u8"]


async def test_the_conversion_and_the_questionnaire_by_hand(played):
    r, _db = played
    # Enrolled: u1 u2 u4 u8, of the 8 who joined (u6, who left, included).
    f = r.conversion
    assert (f.overall, r.conversion_rate()) == (Rate(8, 4), 50.0)
    # Every lesson day (1-3): only u1.
    assert (r.lesson_track(), f.by_completion) == ("正课", {FINISHED: Rate(1, 1), NOT_FINISHED: Rate(7, 3)})
    # Reached: u3 u4 u6 (the @) and u4 (the nudge); missed: u8 (joined after the @, its nudge
    # refused); never: u1 u2 u5 (muted) u7 (joined on day 2).
    assert f.by_reminders == {REACHED: Rate(3, 1), MISSED: Rate(1, 1), NEVER: Rate(4, 2)}
    # The report's own tiers (key u1; active u3 u2; occasional u4 u5 u7; lurker u8), and u6
    # who left.
    assert f.by_tier == {
        KEY: Rate(1, 1),
        ACTIVE: Rate(2, 1),
        OCCASIONAL: Rate(3, 1),
        LURKER: Rate(1, 1),
        LEFT: Rate(1, 0),
    }

    # Had it: u1-u6 at 10:00, u7 at its join; u8 the link. Answered: u1 u2 u3 u5; every
    # question: u1 u2.
    s = r.survey
    assert s is not None and s.survey_id == "intake"
    assert (s.invited, s.asked, s.linked, s.answered, s.done) == (8, 7, 1, 4, 2)
    q1, q2 = s.questions
    assert (q1.text, q1.counts(), q1.answered) == ("你的 Python 水平？", [1, 2, 1], 4)  # u2; u1 u3; u5
    assert (q2.choices, q2.answered, sorted(a.text for a in q2.answers)) == (
        (),
        2,
        ["数据分析", "自动化办公"],
    )


@pytest.mark.postgres
async def test_the_same_cohort_on_postgresql_gives_the_same_report(harness, played):
    from tests.harness import scratch_postgres

    url = scratch_postgres()
    h = await harness(THREE_DAYS, people=PEOPLE, operators=("op1",), db_url=url, quiet_hours=None)
    await play(h)
    with h.bot.db.connect() as conn:
        report = compute(conn, "c1", h.clock.now(), h.run.playbook, LIMITS)
    await h.stop()
    assert report == played[0]
    result = invoke("report", "--db", url)
    assert result.exit_code == 0, result.output
    assert "71.4%" in result.stdout and "小八" in result.stdout


async def test_group_messages_are_counted_per_member_and_day(harness):
    """Check-ins, commands, chat and an empty message count; private messages, the
    operators' and the bot's own do not."""
    h = await harness(THREE_DAYS, people=PEOPLE, operators=("op1",), now="day 1 08:00")
    for who, text in [
        ("u1", "打卡"),
        ("u1", "帮助"),
        ("u1", "hi"),
        ("u1", ""),
        ("op1", "打卡"),
        ("op1", "hi"),
    ]:
        await h.say(who, text)
    await h.dm("u2", "进度")
    await h.until("day 2 08:00")
    await h.say("u1", "晨读")
    await h.settle()
    with h.bot.db.connect() as conn:
        assert repo.message_counts(conn, "c1") == {("u1", 1): 4, ("u1", 2): 1}


# --- the same numbers in every view -----------------------------------------------------------


def _sheet(book: Path, title: str) -> list[tuple]:
    return list(openpyxl.load_workbook(book)[title].iter_rows(values_only=True))


def _num(value: object) -> object:
    """A cell as a number where it is one: xlsx gives 50 back for 50.0, CSV says "50.0"."""
    try:
        return float(str(value))
    except ValueError:
        return value


def _csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


async def test_terminal_xlsx_and_csv_show_the_same_numbers(played, tmp_path):
    r, db = played
    book, folder = tmp_path / "out" / "r.xlsx", tmp_path / "csv"
    result = invoke("report", "--db", db, "--xlsx", book, "--csv", folder)
    assert result.exit_code == 0, result.output
    screen = result.stdout
    wide = [line for line in screen.splitlines() if cell_len(line) > 80]
    assert not wide, wide

    funnel = _sheet(book, "completion")
    assert funnel[0] == ("day", "track", "checked in", "make-ups", "in the group that day", "rate (%)")
    # With --db the tracks are named by id; the numbers are the same.
    by_id = {"正课": "lesson", "晨读": "read"}
    assert funnel[1:] == [(f.day, by_id[f.track], f.done, f.makeups, f.in_group, f.rate) for f in r.funnel]
    assert [[_num(v) for v in row] for row in _csv(folder / "c1-report-funnel.csv")[1:]] == [
        [_num(v) for v in row] for row in funnel[1:]
    ]
    for f in r.funnel:
        line = next(x for x in screen.splitlines() if re.search(rf"\b{f.day} .*{by_id[f.track]}\b", x))
        assert f"{f.done}" in line and f"{f.in_group}" in line and f"{f.rate:.1f}%" in line

    daily = _sheet(book, "daily activity")
    assert daily[1:] == [(d.day, *d.figures()) for d in r.daily]
    assert _csv(folder / "c1-report-daily.csv")[2][1:4] == ["8", "5", "62.5"]
    assert "62.5%" in screen and "60.0%" in screen

    reminders = _sheet(book, "reminders")
    assert [row[3:] for row in reminders[1:]] == [x.figures() for x in r.reminders]
    assert "100.0%" in screen and "25.0%" in screen

    tiers = _sheet(book, "tiers")
    assert [(row[1], row[3], row[4]) for row in tiers[1:]] == [
        ("u1", 5, 5),
        ("u3", 6, 2),
        ("u2", 3, 3),
        ("u4", 2, 1),
        ("u5", 1, 1),
        ("u7", 2, 1),
        ("u8", 0, 0),
    ]
    assert "小一" in screen and "小八" in screen  # names, to act on

    members_sheet = _sheet(book, "members")
    head = members_sheet[0]
    u4 = dict(zip(head, next(row for row in members_sheet if row[0] == "u4"), strict=True))
    assert (u4["lesson, day 1"], u4["lesson, day 3"], u4["read, day 3"], u4["messages"]) == (
        "✗",
        "leave",
        "leave",
        2,
    )
    u1 = dict(zip(head, next(row for row in members_sheet if row[0] == "u1"), strict=True))
    assert (u1["lesson: streak now"], u1["lesson: longest streak"], u1["rewards"]) == (3, 3, "pack")
    keys = [
        "summary",
        "funnel",
        "hours",
        "reminders",
        "daily",
        "tiers",
        "rewards",
        "streaks",
        "people",
        "conversion",
        "survey",
        "members",
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"c1-report-{k}.csv" for k in keys)
    # With --db: the groups but by completion, the questionnaire by numbers.
    assert [row[1] for row in _sheet(book, "conversion")[1:4]] == [
        "everyone who joined",
        "reminders reached them",
        "a reminder was meant for them but none arrived",
    ]
    assert [row[2:] for row in _sheet(book, "survey")[1:]] == [
        ("1", 1, 25),
        ("2", 2, 50),
        ("3", 1, 25),
        ("(written answers)", 2, 100),
    ]


def config_for(tmp_path: Path, db: Path, *cohorts: tuple[str, str]) -> Path:
    """A config of the played database (the fixture's tiers): its cohorts (id, start) on
    THREE_DAYS; c1 alone by default."""
    playbook = tmp_path / "three.yaml"
    playbook.write_text(THREE_DAYS, encoding="utf-8")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database: sqlite:///{db}\ntransport: {{kind: simulated}}\n"
        f"report: {{active_min_messages: {LIMITS.active_min_messages}, key_members: {LIMITS.key_members}}}\n"
        "cohorts:\n"
        + "".join(
            f"  - {{id: {cid}, playbook: {playbook}, room: 训练营 {cid}, start: {start}}}\n"
            for cid, start in cohorts or (("c1", "2026-12-01"),)
        ),
        encoding="utf-8",
    )
    return config


CONVERSION = [
    ("all", "everyone who joined", 8, 4, 50.0),
    ("completion", "finished every day of 正课", 1, 1, 100.0),
    ("completion", "did not finish", 7, 3, 42.9),
    ("reminders", "reminders reached them", 3, 1, 33.3),
    ("reminders", "a reminder was meant for them but none arrived", 1, 1, 100.0),
    ("reminders", "never reminded", 4, 2, 50.0),
    ("tier", "key members", 1, 1, 100.0),
    ("tier", "active members", 2, 1, 50.0),
    ("tier", "occasional (spoke, below the threshold)", 3, 1, 33.3),
    ("tier", "lurkers (never spoke)", 1, 1, 100.0),
    ("tier", "left the group", 1, 0, 0.0),
]
Q1, Q2 = "你的 Python 水平？", "你想用 Python 做什么？"
TALLIES = [
    (1, Q1, "1. 零基础", 1, 25),
    (1, Q1, "2. 学过一点", 2, 50),
    (1, Q1, "3. 能写小程序", 1, 25),
    (2, Q2, "(written answers)", 2, 100),
]


def _line(screen: str, start: str, after: str = "Conversion:") -> str:
    """The terminal's table row, below the line starting with ``after``, whose first cell
    starts with ``start`` (a long label folds)."""
    lines = screen.splitlines()
    below = lines[next(i for i, x in enumerate(lines) if x.startswith(after)) :]
    return next(x for x in below if x.startswith(f"│{start}"))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("│").split("│")]


async def test_conversion_and_questionnaire_show_the_same_numbers_everywhere(played, tmp_path):
    _r, db = played
    book, folder = tmp_path / "r.xlsx", tmp_path / "csv"
    result = invoke("report", "--config", config_for(tmp_path, db), "--xlsx", book, "--csv", folder)
    assert result.exit_code == 0, result.output
    screen = result.stdout
    assert not [line for line in screen.splitlines() if cell_len(line) > 80]
    assert "enrolled in the full course (报名): 4 of 8 members who joined (50.0%)" in screen

    sheet = _sheet(book, "conversion")
    assert sheet[0] == ("grouped by", "which members", "members", "enrolled", "rate (%)")
    assert sheet[1:] == CONVERSION
    in_csv = _csv(folder / "c1-report-conversion.csv")
    assert [tuple(_num(v) for v in row) for row in in_csv[1:]] == [
        tuple(_num(v) for v in row) for row in CONVERSION
    ]
    for _by, group, members_n, enrolled, rate in CONVERSION:
        assert _cells(_line(screen, group[:25]))[1:4] == [str(members_n), str(enrolled), f"{rate:.1f}%"]

    summary = dict(_sheet(book, "summary")[1:])
    assert (summary["enrolled (报名)"], summary["conversion (%), everyone who joined"]) == (4, 50)
    assert (summary["questionnaire"], summary["questionnaire: answered every question"]) == ("intake", 2)
    people = _sheet(book, "members")
    column = people[0].index("enrolled")
    assert sorted(row[0] for row in people[1:] if row[column] == "yes") == ["u1", "u2", "u4", "u8"]

    assert _sheet(book, "survey")[1:] == TALLIES
    in_csv = _csv(folder / "c1-report-survey.csv")
    assert [tuple(_num(v) for v in row) for row in in_csv[1:]] == [
        tuple(_num(v) for v in row) for row in TALLIES
    ]
    words = " ".join(screen.split())
    assert (
        "Questionnaire intake 8 had it (7 asked privately, 1 given the link in the group); 4 answered, "
        "2 answered every question"
    ) in words
    assert f"1. {Q1} (4 answers)" in words and f"2. {Q2} (2 answers)" in words
    for _n, _q, label, n, share in TALLIES:
        row = next(x for x in screen.splitlines() if f" {label} " in x)
        assert _cells(row)[2:4] == [str(n), str(share)]
    assert "数据分析" not in screen and "自动化办公" not in screen  # counted, not listed


async def test_without_the_playbook_the_report_says_what_it_cannot_tell(played, tmp_path):
    _r, db = played
    result = invoke("report", "--db", db)
    assert result.exit_code == 0, result.output
    words = " ".join(result.stdout.split())
    # No lesson days without the playbook: the other groups are the same.
    assert "by completion: needs the playbook (--config instead of --db)" in words
    assert "finished every day" not in words
    assert _cells(_line(result.stdout, "never reminded")) == ["never reminded", "4", "2", "50.0%", "████████"]
    # The questionnaire as the database has it: choices by number.
    assert "question 1 (4 answers)" in words and "2. 学过一点" not in words
    assert _cells(_line(result.stdout, "question 1", "Questionnaire"))[1:4] == ["1", "1", "25"]


async def test_several_cohorts_side_by_side(played, tmp_path):
    """`report --config` without --cohort when the config runs several: a line each, the
    numbers of each cohort's own report; a cohort not started yet says so."""
    r, db = played
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{db}")
    at = datetime(2026, 11, 1, 2, tzinfo=UTC)  # a cohort that ran in November
    with engine.begin() as conn:
        repo.ensure_cohort(conn, "c0", "三日营", "训练营 c0", at.date(), "Asia/Shanghai", at)
        for i in range(3):
            repo.member_joined(conn, "c0", f"v{i}", f"学员{i}", None, at)
        for i in range(2):
            repo.add_conversion(conn, "c0", f"v{i}", at, "op1")
        for day in (1, 2, 3):  # v0 finishes the lessons, nothing else is checked in
            repo.record_checkin(conn, "c0", "v0", "lesson", day, at + timedelta(days=day - 1))
    engine.dispose()
    config = config_for(tmp_path, db, ("c0", "2026-11-01"), ("c1", "2026-12-01"), ("c2", "2027-01-04"))
    result = invoke("report", "--config", config)
    assert result.exit_code == 0, result.output
    rows = [_cells(x) for x in result.stdout.splitlines() if x.startswith("│")]
    # c0: 3 members, v0 checked in on the 3 lesson days of 5 track days (3 of 15), 2 enrolled.
    assert rows == [
        ["c0", "3/3", "3", "20.0%", "2/3", "66.7%"],
        ["c1", "3/3", f"{r.in_group_now}", f"{r.completion()}%", "4/8", f"{r.conversion_rate()}%"],
        ["c2", "–", "–", "–", "–", "–"],
    ]
    assert "c2: not in the database yet" in result.stdout and "add --cohort ID" in result.stdout
    assert "Completion per day and track" not in result.stdout  # no cohort's whole report

    one = invoke("report", "--config", config, "--cohort", "c0")
    assert one.exit_code == 0, one.output
    assert "enrolled in the full course (报名): 2 of 3 members who joined (66.7%)" in one.stdout
    assert _cells(_line(one.stdout, "finished every day of 正课"))[1:4] == ["1", "1", "100.0%"]

    files = invoke("report", "--config", config, "--xlsx", tmp_path / "r.xlsx")
    assert files.exit_code == 2 and not (tmp_path / "r.xlsx").exists()
    assert "name it with --cohort: c0, c1, c2" in " ".join(files.stderr.split())


async def test_the_report_in_chinese(played):
    r, _db = played
    i18n.use("zh")
    console = Console(record=True, width=80)
    for part in tables(r):
        console.print(part)
    text = console.export_text()
    assert "每日各打卡项完成率" in text and "潜水（从未发言）" in text and "小八" in text
    assert not [line for line in text.splitlines() if cell_len(line) > 80]
    assert "71.4%" in text
    words = "".join(text.split())
    assert "报名正式课：进过群的8人里4人（50.0%）" in words and "转化：报名正式课" in words
    assert "│正课每天都完成│1│1│100.0%│" in words and "│该提醒但没提醒到│1│1│100.0%│" in words
    assert "问卷intake" in words
    assert "共8人收到问卷（私信询问7人，在群里发链接1人）；4人回答，2人答完全部问题" in words
    assert "（书面回答）│2│100" in words


# --- bad input --------------------------------------------------------------------------------


async def test_unknown_empty_or_future_cohorts_are_one_line_and_exit_2(played, tmp_path):
    _r, db = played
    unknown = invoke("report", "--db", db, "--cohort", "nope")
    assert unknown.exit_code == 2 and "no cohort 'nope'" in unknown.stderr and "c1" in unknown.stderr

    from sqlalchemy import create_engine, insert

    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        start = datetime.now(UTC).date()
        for cid, day in (("empty", start), ("later", start.replace(year=start.year + 1))):
            conn.execute(
                insert(repo.cohort_t).values(
                    id=cid,
                    playbook="x",
                    room="r",
                    start=day,
                    timezone="Asia/Shanghai",
                    created_at=datetime.now(UTC),
                )
            )
    engine.dispose()
    empty = invoke("report", "--db", db, "--cohort", "empty")
    assert empty.exit_code == 2 and "has no members recorded yet" in empty.stderr
    later = invoke("report", "--db", db, "--cohort", "later")
    assert later.exit_code == 2 and f"starts on {start.replace(year=start.year + 1)}" in later.stderr
    several = invoke("report", "--db", db)
    assert several.exit_code == 2 and "name one with --cohort" in " ".join(several.stderr.split())
    for bad in (unknown, empty, later, several):
        assert "Traceback" not in bad.output and len(bad.stderr.strip().splitlines()) <= 2

    neither = invoke("report")
    assert neither.exit_code == 2 and "--config FILE or --db URL" in neither.stderr
    nothing = invoke("report", "--db", tmp_path / "missing.db")
    assert nothing.exit_code == 2 and "there is no database file" in nothing.stderr
    with pytest.raises(ReportError), create_engine(f"sqlite:///{db}").connect() as conn:
        compute(conn, "later", datetime.now(UTC))


HOSTILE = {"u1": '=HYPERLINK("http://x","y")', "u2": "+1", "u3": "-2", "u4": "🌸小美"}


async def test_names_that_look_like_formulas_stay_text(harness, tmp_path):
    db = tmp_path / "h.db"
    people = members(*(f"{k}:{v}" for k, v in HOSTILE.items()))
    h = await harness(THREE_DAYS, people=people, now="day 1 08:00", db_url=f"sqlite:///{db}")
    for who in HOSTILE:
        await h.say(who, "打卡")
    await h.until("day 2 00:00")
    await h.settle()
    await h.stop()
    book, folder = tmp_path / "r.xlsx", tmp_path / "csv"
    result = invoke("report", "--db", db, "--xlsx", book, "--csv", folder)
    assert result.exit_code == 0, result.output
    ws = openpyxl.load_workbook(book)["members"]
    names = {row[0].value: row[1] for row in ws.iter_rows(min_row=2)}
    for mid, name in HOSTILE.items():
        cell = names[mid]
        assert cell.value == name and cell.data_type == "s"
        assert cell.quotePrefix == name.startswith(("=", "+", "-"))
    rows = {row[0]: row[1] for row in _csv(folder / "c1-report-members.csv")[1:]}
    assert rows == {"u1": "'" + HOSTILE["u1"], "u2": "'+1", "u3": "'-2", "u4": "🌸小美"}
    assert "🌸小美" in result.stdout


async def test_the_report_section_of_the_config(tmp_path):
    from bot import config as configs
    from bot.yamlfile import InputError

    shutil.copy(
        Path(__file__).resolve().parent.parent / "playbooks" / "python-8day.yaml", tmp_path / "p.yaml"
    )
    base = "transport: {kind: simulated}\ncohorts: [{id: a, playbook: p.yaml, room: r, start: 2026-12-01}]\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "report: {active_min_messages: 5, key_members: 10}\n", encoding="utf-8")
    assert configs.load(good).config.report.key_members == 10
    assert configs.load(good).config.report.active_min_messages == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "report:\n  key_members: -1\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        configs.load(bad)
    assert ":4:" in str(err.value.problems[0]) and "0 to 500" in str(err.value.problems[0])


# --- the demo's report ------------------------------------------------------------------------


def _demo_table(text: str, title: str) -> list[list[str]]:
    """The rows of a demo table (after its title), as cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            rows.append([c.strip() for c in line.strip("│").split("│")])
    return rows


def test_the_demo_report_matches_the_demo_tables(tmp_path):
    db = tmp_path / "demo.db"
    demo = invoke("demo", "--quiet", "--db", db, env={"COLUMNS": "200"})
    assert demo.exit_code == 0, demo.output
    report = invoke("report", "--db", db, "--xlsx", tmp_path / "d.xlsx", env={"COLUMNS": "200"})
    assert report.exit_code == 0, report.output

    checkins = _demo_table(demo.stdout, "Check-ins per day and track")
    funnel = _sheet(tmp_path / "d.xlsx", "completion")[1:]
    tracks = ["lesson", "reading", "reflection"]  # the sample's, in the demo's columns' order
    expected = []
    for day, *cells, in_group in checkins:
        expected += [
            (int(day), t, int(n), int(in_group)) for t, n in zip(tracks, cells, strict=True) if n != "·"
        ]
    assert [(d, t, n, g) for d, t, n, _m, g, _r in funnel] == expected

    rewards = {name: int(n) for name, n, _first in _demo_table(demo.stdout, "Rewards granted")}
    pb_names = {"reading-pack": "资料大礼包", "lesson-certificate": "结营证书"}
    got = {}
    for row in _sheet(tmp_path / "d.xlsx", "rewards")[1:]:
        got[pb_names[row[0]]] = got.get(pb_names[row[0]], 0) + 1
    assert got == rewards

    said = _demo_table(demo.stdout, "How much the bot said, per day")
    mentioned = {int(row[0]): int(row[-1]) for row in said}
    reminders = _sheet(tmp_path / "d.xlsx", "reminders")[1:]
    per_day = {d: sum(row[3] for row in reminders if row[0] == d and row[2] == "group @") for d in mentioned}
    assert per_day == mentioned

    # The demo ends with the report's summary: the same daily table as `report --db`.
    daily_demo = _demo_table(demo.stdout, "Daily activity (active: spoke or checked in)")
    daily_report = _demo_table(report.stdout, "Daily activity (active: spoke or checked in)")
    assert daily_demo == daily_report and len(daily_demo) == 8


# --- the pictures -----------------------------------------------------------------------------


async def test_a_chinese_font_is_found_with_every_glyph_of_the_labels(played_report_zh):
    font = find_font()
    if font is None:
        if os.environ.get("CI"):
            pytest.fail("no CJK font in CI: .ci/run installs fonts-noto-cjk")
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    labels = "".join(
        [
            played_report_zh.name,
            *(t.name for t in played_report_zh.tracks),
            "第天完成率活跃学员在群人数已发奖励统计截至",
        ]
    )
    assert missing(font.path, labels) == set()


@pytest.fixture
def played_report_zh(played):
    i18n.use("zh")
    return played[0]


async def test_the_png_is_one_readable_page(played_report_zh, tmp_path):
    from PIL import Image

    font = find_font()
    if font is None and not os.environ.get("CI"):
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    assert font is not None
    path = write_png(played_report_zh, tmp_path / "r.png", font)
    shots = Path("/tmp/report-shots")
    if shots.is_dir():
        shutil.copy(path, shots / "test-report.png")
    with Image.open(path) as img:
        assert img.size == (1080, 1560)  # a phone's width
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colors is not None and len(colors) > 50  # bars, text, not a blank page


async def test_the_conversion_joins_the_png_headline_only_where_it_fits(played, tmp_path):
    """A fifth headline figure once members are enrolled: it fits beside the Chinese labels;
    the English "members in the group" leaves it no room, so that page keeps its four."""
    from bot.report_charts import picture

    font = find_font()
    if font is None and not os.environ.get("CI"):
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    assert font is not None
    headline = {"zh": 5, "en": 4}
    for lang, figures in headline.items():
        i18n.use(lang)
        fig = picture(played[0], font)
        renderer = fig.canvas.get_renderer()
        # The headline's numbers are the texts in the 22-point row (after title, dates, as of).
        row = [t for t in fig.texts if t.get_fontsize() == 22]
        labels = [fig.texts[fig.texts.index(t) + 1] for t in row]
        assert len(row) == figures, lang
        assert (i18n._("conversion") in [t.get_text() for t in labels]) == (figures == 5)
        if figures == 5:
            assert row[-1].get_text() == "50.0%"
        starts = [t.get_window_extent(renderer).x0 for t in row]
        for i, (value, label) in enumerate(zip(row, labels, strict=True)):
            end = starts[i + 1] if i + 1 < len(row) else fig.bbox.width
            ends = [t.get_window_extent(renderer).x1 for t in (value, label)]
            assert max(ends) < end, (lang, value.get_text(), label.get_text())


def rehearsal(members_n: int = 30, enrolled: int = 0) -> Report:
    """A demo cohort played in this (synchronous) test: its report, with its first
    ``enrolled`` members marked enrolled afterwards."""
    from bot import playbook as playbooks
    from bot.demo import COHORT_ID, SAMPLE_PLAYBOOK, demo_scenario, rehearsal_report
    from bot.simulate import simulate
    from storage.models import LEARNER

    pb = playbooks.load(SAMPLE_PLAYBOOK)
    sc, _habits = demo_scenario(pb, members_n, 3)
    result = simulate(pb, sc)
    with result.bot.db.begin() as conn:
        learners = [m for m in repo.members(conn, COHORT_ID, present_only=False) if m.role == LEARNER]
        for m in learners[:enrolled]:
            repo.add_conversion(conn, COHORT_ID, m.member_id, result.cal.start_utc(), "op1")
    return rehearsal_report(result, pb)


def test_the_html_page_draws_its_charts_offline_in_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} here: apt-get install -y chromium")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    i18n.use("zh")
    report = rehearsal(enrolled=8)
    page_file = write_html(report, tmp_path / "html" / "r.html")
    text = page_file.read_text(encoding="utf-8")
    assert "<script src" not in text and "每日各打卡项完成率" in text
    assert i18n._("Conversion: enrolled in the full course (报名)") in text
    assert i18n._("Questionnaire {survey}").format(survey="intake") in text
    shot = tmp_path / "r-html.png"
    fetched: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
        )
        page.on("request", lambda req: fetched.append(req.url))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        canvases = page.locator(".chart canvas").count()
        page.screenshot(path=str(shot))
        browser.close()
    assert [u for u in fetched if not u.startswith("file:")] == []  # offline: nothing fetched
    assert errors == []
    assert canvases == 6  # five of the cohort's days, one of its conversion
    shots = Path("/tmp/report-shots")
    if shots.is_dir():
        shutil.copy(shot, shots / "test-report-html.png")
    with Image.open(shot) as img:
        colors = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colors is not None and len(colors) > 100  # charts and text, not a blank page
        blue = sum(n for n, (r_, g, b) in colors if b > 150 and r_ < 120)
        assert blue > 2000  # ECharts' bars were drawn


async def test_without_a_chinese_font_the_png_comes_with_a_warning(played, tmp_path, monkeypatch):
    from bot import report_charts

    assert find_font(("No Such Font",)) is None
    monkeypatch.setattr(report_charts, "find_font", lambda: None)
    result = invoke("report", "--db", played[1], "--png", tmp_path / "r.png")
    assert result.exit_code == 0 and (tmp_path / "r.png").is_file()
    assert "no Chinese font found" in result.stderr and "fonts-noto-cjk" in " ".join(result.stderr.split())


def test_a_font_matplotlib_cannot_read_is_passed_over(tmp_path, monkeypatch):
    """Debian's colour emoji is a bitmap font ("Non-scalable fonts are not supported"); any
    broken font file on an operator's machine is the same: looked past, not a crash."""
    from matplotlib import font_manager

    broken = tmp_path / "Broken.ttf"
    broken.write_bytes(b"\x00\x01\x00\x00not a font at all")
    listed = font_manager.findSystemFonts
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [*listed(*a, **k), str(broken)])
    assert find_font(("No Such Font",)) is None  # read the fonts again, the broken one included
    assert str(broken) not in {f.fname for f in font_manager.fontManager.ttflist}
    font = find_font()
    if font is None:
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    assert font.path != str(broken)


def test_what_no_font_can_draw_is_left_out_not_boxed():
    from bot.report_charts import _fallback_path, drawable

    font = find_font()
    if font is None:
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    assert drawable("🌸小美 ✓", [font.path, _fallback_path()]) == "小美 ✓"
