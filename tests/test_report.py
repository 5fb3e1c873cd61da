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
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pytest
from rich.cells import cell_len
from rich.console import Console
from typer.testing import CliRunner

from bot import i18n
from bot.cli import app
from bot.report import ACTIVE, KEY, LURKER, OCCASIONAL, Report, ReportError, Thresholds, compute
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
"""
PEOPLE = members(*(f"u{i}:小{n}" for i, n in enumerate("一二三四五六", 1)), "u8:小八", "op1:王老师")
LIMITS = Thresholds(active_min_messages=3, key_members=1)


def invoke(*args: str | Path, env: dict[str, str] = ENV):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


async def play(h: Harness) -> None:
    """The scenario the expected figures below are worked out from. u8 never speaks and is
    no friend of the account (its nudge is refused, so it is not counted as nudged)."""
    h.group.strangers = {"u8"}
    steps = [
        ("day 1 09:00", "u1", "打卡"),
        ("day 1 10:00", "u2", "打卡"),
        ("day 1 11:00", "u3", "你好"),
        ("day 1 11:05", "u3", "老师好"),
        ("day 1 11:10", "u3", "请问作业在哪"),
        ("day 1 12:00", "dm u5", "免打扰"),  # private: muted, and not a group message
        ("day 1 13:00", "op1", "大家好"),  # an operator: never counted
        # 20:00 the reminder @-mentions u3, u4, u6, u8 (u5 is muted)
        ("day 1 20:30", "u3", "打卡"),  # within 2 h of it
        ("day 1 21:00", "u5", "打卡"),  # not reminded, nothing done before: "others", in 2 h
        ("day 1 23:00", "u6", "打卡"),  # 3 h after it: not within 2 h
        ("day 2 08:00", "u1", "晨读"),
        # 09:00 the nudge about day 1 goes to u4 (and to u8, refused)
        ("day 2 10:00", "u2", "晨读"),  # one of the others, within 2 h
        ("day 2 10:30", "u4", "打卡"),  # nudged, within 2 h
        ("day 2 12:00", "join u7", ""),
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
    ]
    for at, who, text in steps:
        await h.until(at)
        if who.startswith("dm "):
            await h.dm(who[3:], text)
        elif who.startswith("join "):
            await h.group.join(members(f"{who[5:]}:小七")[0])
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
    # @: u3 u4 u6 u8, u3 in 2 h; others: u5 (muted), in 2 h.
    assert remind.figures() == (4, 1, 25.0, 1, 1, 100.0)
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
        "members",
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"c1-report-{k}.csv" for k in keys)


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


def rehearsal(members_n: int = 30) -> Report:
    """A demo cohort played in this (synchronous) test: its report."""
    from bot import playbook as playbooks
    from bot.demo import SAMPLE_PLAYBOOK, demo_scenario, rehearsal_report
    from bot.simulate import simulate

    pb = playbooks.load(SAMPLE_PLAYBOOK)
    sc, _habits = demo_scenario(pb, members_n, 3)
    return rehearsal_report(simulate(pb, sc), pb)


def test_the_html_page_draws_its_charts_offline_in_chromium(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} here: apt-get install -y chromium")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    i18n.use("zh")
    page_file = write_html(rehearsal(), tmp_path / "html" / "r.html")
    text = page_file.read_text(encoding="utf-8")
    assert "<script src" not in text and "每日各打卡项完成率" in text
    shot = tmp_path / "r-html.png"
    fetched: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.route(
            "**/*",
            lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort(),
        )
        page.on("request", lambda req: fetched.append(req.url))
        page.goto(page_file.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=15_000)
        canvases = page.locator(".chart canvas").count()
        page.screenshot(path=str(shot))
        browser.close()
    assert [u for u in fetched if not u.startswith("file:")] == []  # offline: nothing fetched
    assert canvases == 5
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


def test_what_no_font_can_draw_is_left_out_not_boxed():
    from bot.report_charts import _fallback_path, drawable

    font = find_font()
    if font is None:
        pytest.skip("no CJK font here: apt-get install -y fonts-noto-cjk")
    assert drawable("🌸小美 ✓", [font.path, _fallback_path()]) == "小美 ✓"
