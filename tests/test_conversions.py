"""Conversions (报名): marked by an operator through the whole bot (报名 / 取消报名, audited; a
member named like an operator cannot), imported from shop order exports while the bot runs
(CSV in UTF-8 with a BOM or GBK, xlsx; nicknames and ids; partial matches reported; twice is
harmless; only the conversion table is written), and the figures of a known cohort: by
completion, by whether reminders reached them, by tier, per cohort."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from bot.cli import app
from bot.conversions import (
    FINISHED,
    MISSED,
    NEVER,
    NOT_FINISHED,
    REACHED,
    Rate,
    conversion_figures,
    every_cohort,
    read_orders,
)
from bot.transports.base import Member
from storage import repo
from storage.db import open_db
from storage.readonly import open_readonly
from tests.harness import EXAMPLE, load_playbook, members, scratch_postgres
from tests.test_operator_commands import ask

PEOPLE = members(
    "op1:王助教",
    "u01:小明",
    "u02:小红",
    "u03:王芳",
    "u04:王芳",  # two members of one name
    "u05:小星🌟",  # GBK has no emoji: a GBK export writes "小星?"
    "u06:=cmd|' /C calc'!A0",
    "u07:王助教",  # a member named like the operator
)
HEAD = ["订单号", "微信昵称", "微信号", "手机号", "实付金额"]
ORDERS = [
    ["A1", "小明", "", "13800000001", "999"],  # by nickname
    ["A2", "随便写的", "u02", "13800000002", "999"],  # by id (the nickname is wrong)
    ["A3", "王芳", "", "13800000003", "999"],  # two members named so
    ["A4", "无名氏", "wxid_nobody", "13800000004", "999"],  # nobody
    ["A5", "  小明 ", "", "13800000001", "999"],  # the same buyer's second order
]


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


async def start(harness, db: Path | None = None, now: str = "day 6 20:00"):
    url = f"sqlite:///{db}" if db else "sqlite://"
    h = await harness(people=PEOPLE, operators=("op1",), now=now, db_url=url)
    h.bot.engine.router.desk.language = "en"
    return h


def converted(engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {c.member_id: c.source for c in repo.conversions(conn, "c1")}


# --- 报名 in the bot ---------------------------------------------------------------------------


async def test_an_operator_marks_and_unmarks_a_member(harness):
    h = await start(harness)
    reply = await ask(h, "enrolled 小明")
    assert reply == "🎉 [c1] 小明 marked as enrolled in the full course (by you). Enrolled so far: 1 of 7."
    assert (await ask(h, "enrolled 小明")).startswith(
        "[c1] 小明 is marked enrolled already (12-06 20:00, by 王助教)"
    )
    assert "could be: 王芳（u03）, 王芳（u04）" in await ask(h, "enrolled 王芳")
    assert (await ask(h, "enrolled u04")).startswith("🎉 [c1] 王芳 marked")  # by id, then
    assert await ask(h, "enrolled") == 'Write: "enrolled NAME", e.g. "enrolled 小明".'
    assert await ask(h, "unenroll 小明") == "[c1] 小明 is no longer marked enrolled. Enrolled now: 1 of 7."
    assert await ask(h, "unenroll 小明") == "[c1] 小明 is not marked enrolled."
    assert converted(h.bot.db) == {"u04": "op1"}
    with h.bot.db.connect() as conn:
        log = [(op, act, detail) for _, op, act, detail in repo.actions(conn, "c1")]
    assert log == [("op1", "unenroll", "u01"), ("op1", "enrolled", "u04"), ("op1", "enrolled", "u01")]


async def test_a_member_named_like_an_operator_cannot_mark(harness):
    h = await start(harness)
    await h.dm("u07", "报名 小明")  # u07 is called 王助教, like op1
    await h.say("u07", "@CohortBot 报名 小红")
    await h.say("u01", "报名 小明")
    await h.settle()
    assert not h.dms("u07") and not h.dms("u01")
    assert converted(h.bot.db) == {}
    with h.bot.db.connect() as conn:
        assert not repo.actions(conn, "c1")


async def test_marking_in_chinese(harness):
    h = await start(harness)
    h.bot.engine.router.desk.language = "zh"
    assert await ask(h, "报名 小明") == "🎉 【c1】已标记 小明 报名正式课（由你标记）。目前报名：7 人里 1 人。"
    assert await ask(h, "取消报名 小明") == "【c1】已撤销 小明 的报名标记。现在报名：7 人里 0 人。"
    helped = await ask(h, "帮助")
    assert "「报名 名字 [期号]」：标记学员已报名正式课" in helped and "「取消报名 名字 [期号]」" in helped


# --- cohortbot conversions import -------------------------------------------------------------


def write_csv(path: Path, rows: list[list[str]], encoding: str) -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding, errors="replace"))
    return path


@pytest.fixture
async def running(harness, tmp_path):
    """A bot running on an SQLite file (the import is another process's work meanwhile)."""
    db = tmp_path / "bot.db"
    h = await start(harness, db)
    return h, db


async def test_import_a_utf8_csv_while_the_bot_runs(running, tmp_path):
    h, db = running
    orders = write_csv(tmp_path / "orders.csv", [HEAD, *ORDERS], "utf-8-sig")
    result = invoke("conversions", "import", orders, "--db", db)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "orders.csv: 5 buyers read (columns 微信昵称, 微信号): 3 matched (2 newly marked, 1 marked "
        "before), 1 matched nobody, 1 could be several members"
    )
    assert "  row 5: 无名氏 / wxid_nobody" in lines
    assert "  row 4: 王芳 → 王芳 (u03, c1), 王芳 (u04, c1)" in lines
    assert converted(h.bot.db) == {"u01": "import:orders.csv", "u02": "import:orders.csv"}

    # The bot sees it at once, and says where it came from.
    told = await ask(h, "enrolled 小明")
    assert told.startswith("[c1] 小明 is marked enrolled already (") and told.endswith(
        ", imported from orders.csv)."
    )
    again = invoke("conversions", "import", orders, "--db", db)
    assert again.exit_code == 0, again.output
    assert "3 matched (0 newly marked, 3 marked before)" in again.stdout
    assert len(converted(h.bot.db)) == 2  # twice is harmless


async def test_a_gbk_export_with_emoji_lost_to_question_marks(running, tmp_path):
    h, db = running
    rows = [["微信昵称", "手机"], ["小红", "1"], ["小星🌟", "2"], ["小星🌟🌟", "3"]]
    orders = write_csv(tmp_path / "gbk.csv", rows, "gbk")  # 🌟 becomes "?"
    assert "小星?".encode("gbk") in orders.read_bytes()
    result = invoke("conversions", "import", orders, "--db", db)
    assert result.exit_code == 0, result.output
    assert "3 buyers read (columns 微信昵称): 2 matched (2 newly marked" in result.stdout
    assert "row 4: 小星??" in result.stdout  # one emoji more than any member has
    assert set(converted(h.bot.db)) == {"u02", "u05"}


async def test_an_xlsx_with_a_title_above_the_header_and_numeric_ids(running, tmp_path):
    h, db = running
    with h.bot.db.begin() as conn:  # a member whose contact id is digits (QQ-style)
        repo.member_joined(conn, "c1", "10086", "数字君", None, datetime(2026, 12, 1, tzinfo=UTC))
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["小鹅通订单导出 2026-12-01 至 2026-12-08"])
    ws.append([])
    ws.append(["Order", "Nickname", "WeChat ID", "Phone"])
    ws.append(["A1", "=cmd|' /C calc'!A0", None, 138])
    ws.append(["A2", None, 10086, 139])
    ws.append(["A3", "小明", None, None])
    ws["B4"].data_type = "s"  # a name, as the shop wrote it, not a formula
    book.save(tmp_path / "orders.xlsx")
    result = invoke("conversions", "import", tmp_path / "orders.xlsx", "--db", db, "--cohort", "c1")
    assert result.exit_code == 0, result.output
    assert "3 buyers read (columns Nickname, WeChat ID): 3 matched (3 newly marked" in result.stdout
    assert set(converted(h.bot.db)) == {"u06", "10086", "u01"}


@pytest.mark.parametrize(
    "content, said",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is neither CSV text (UTF-8 or GBK) nor an xlsx workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, "is an old Excel .xls file"),
        (b"PK\x03\x04broken zip", "is a zip file but not an xlsx workbook"),
        ("订单号,金额,地址\nA1,99,北京\n".encode(), "no column named 昵称 / 微信昵称 / nickname"),
        (b"", "no column named"),
        # Not strict, the csv module read all after the quote as one field: "0 buyers", exit 0.
        (
            '昵称,微信号\n小明,u1\n"小红,u2\n小刚,u3\n'.encode(),
            'line 3: a quote " opens a field and is never closed',
        ),
    ],
)
async def test_a_file_that_is_no_order_export_is_one_line_and_exit_2(running, tmp_path, content, said):
    _h, db = running
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    result = invoke("conversions", "import", path, "--db", db)
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3


@pytest.mark.parametrize(
    "args, said",
    [
        (["nowhere.csv", "--db", "DB"], "there is no file"),
        (["ORDERS", "--db", "DB", "--cohort", "c9"], "no cohort 'c9'"),
        (["ORDERS", "--db", "missing.db"], "there is no database file"),
        (["ORDERS"], "name the database with --config FILE or --db URL"),
    ],
)
async def test_bad_arguments_are_one_line_and_exit_2(running, tmp_path, args, said):
    _h, db = running
    orders = write_csv(tmp_path / "o.csv", [HEAD, *ORDERS], "utf-8")
    result = invoke(
        "conversions",
        "import",
        *[str(db) if a == "DB" else str(orders) if a == "ORDERS" else a for a in args],
    )
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output


async def test_nothing_matching_is_a_report_not_a_failure(running, tmp_path):
    _h, db = running
    orders = write_csv(tmp_path / "o.csv", [["昵称"], ["路人甲"], ["路人乙"]], "utf-8")
    result = invoke("--lang", "zh", "conversions", "import", orders, "--db", db)
    assert result.exit_code == 0, result.output
    assert (
        "o.csv：读到 2 位买家（按列：昵称）：对上 0 位（新标记 0 位，之前已标记 0 位），2 位没找到"
        in result.stdout
    )
    assert "第 2 行：路人甲" in result.stdout


async def test_the_importer_writes_the_conversion_table_and_nothing_else(running):
    _h, db = running
    engine = open_readonly(f"sqlite:///{db}", writes=("conversion",))
    try:
        with pytest.raises(PermissionError), engine.begin() as conn:
            conn.execute(repo.member_t.update().values(name="x"))
        with pytest.raises(PermissionError), engine.begin() as conn:
            conn.execute(
                insert(repo.checkin_t).values(
                    cohort_id="c1", member_id="u01", track="t", day=1, at=datetime.now(UTC)
                )
            )
        with engine.begin() as conn:
            assert repo.add_conversion(conn, "c1", "u01", datetime.now(UTC), "import:x.csv")
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(repo.conversion_t)).scalar() == 1
    finally:
        engine.dispose()
    reader = open_readonly(f"sqlite:///{db}")
    try:
        with pytest.raises(Exception, match="readonly"), reader.begin() as conn:
            repo.add_conversion(conn, "c1", "u02", datetime.now(UTC), "import:x.csv")
    finally:
        reader.dispose()


@pytest.mark.postgres
async def test_import_into_postgresql(tmp_path):
    url = scratch_postgres()
    db = open_db(url)
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with db.begin() as conn:
        repo.ensure_cohort(conn, "c1", "pb", "room", date(2026, 12, 1), "Asia/Shanghai", at)
        repo.member_joined(conn, "c1", "u01", "小明", None, at)
        repo.member_joined(conn, "c1", "u02", "小红", "红红", at)
        repo.add_conversion(conn, "c1", "u01", at, "op1")  # the bot's operator was first
    orders = write_csv(tmp_path / "o.csv", [["昵称", "微信号"], ["小明", ""], ["红红", ""]], "gbk")
    result = invoke("conversions", "import", orders, "--db", url)
    assert result.exit_code == 0, result.output
    assert "2 matched (1 newly marked, 1 marked before)" in result.stdout
    listed = invoke("conversions", "--db", url)
    assert listed.exit_code == 0, listed.output
    assert "红红" in listed.stdout and "imported from o.csv" in listed.stdout and "by op1" in listed.stdout
    db.dispose()


def test_read_orders_recognizes_headers_in_either_language(tmp_path):
    p = write_csv(tmp_path / "o.csv", [["Nick Name"], ["a"]], "utf-8")
    assert [b.name for b in read_orders(p).buyers] == ["a"]
    p = write_csv(tmp_path / "o.csv", [["序号", "微信ID"], ["1", "wx_1"]], "utf-8-sig")
    assert [(b.line, b.id) for b in read_orders(p).buyers] == [(2, "wx_1")]
    p = tmp_path / "tabs.csv"
    p.write_text("手机号\t用户昵称\n1\t小明\n", encoding="gbk")
    assert [b.name for b in read_orders(p).buyers] == ["小明"]
    # Quotes that close, doubled, mid-field or around a line break, are read as written.
    p.write_text('昵称,微信号\n小明,"u""1"\n"a"b,u2\n"多\n行",u3\n', encoding="utf-8")
    assert [b.id for b in read_orders(p).buyers] == ['u"1', "u2", "u3"]


# --- the figures --------------------------------------------------------------------------------

# The contract's example: lesson on days 2-5, a reminder on day 2 at 21:30 and a nudge on day 3
# about day 2's lesson.
FIGURE_PEOPLE = members("op1:王助教", "u01:甲", "u02:乙", "u03:丙", "u04:丁", "u05:戊", "u06:己")


async def test_the_figures_of_a_known_cohort(harness):
    """u01, u02 finish every lesson; u03 misses day 5; u04-u06 never check in; u08 joins on day
    2 at 22:00. The 21:30 reminder @s u04-u06; the day-3 nudge about day 2 reaches u04 and u06,
    not u05 (no friend of the account, but the group's reminder reached them) nor u08 (no
    friend either, and too late for the reminder). u01, u03, u04, u08 buy; so does op1, who
    is no learner."""
    h = await harness(load_playbook(EXAMPLE), people=FIGURE_PEOPLE, operators=("op1",), now="day 2 08:00")
    h.group.strangers = {"u05", "u08"}
    for day in (2, 3, 4, 5):
        await h.until(f"day {day} 08:00")
        for who in ("u01", "u02", "u03") if day < 5 else ("u01", "u02"):
            await h.say(who, "打卡")
        if day == 2:
            await h.until("day 2 22:00")
            await h.group.join(Member("u08", "庚"))
    await h.until("day 6 09:00")
    for who in ("甲", "丙", "丁", "庚", "王助教"):
        await h.dm("op1", f"enrolled {who}")
    await h.settle()

    tiers = {"u01": "A", "u02": "A", "u03": "B", "u04": "B", "op1": "A", "nobody": "C"}
    with h.bot.db.connect() as conn:
        f = conversion_figures(conn, "c1", h.run.playbook, tiers)
    assert f.overall == Rate(7, 4) and f.overall.rate == 4 / 7
    assert f.converted == {"u01", "u03", "u04", "u08"}
    assert f.lesson_track == "lesson"
    assert f.by_completion == {FINISHED: Rate(2, 1), NOT_FINISHED: Rate(5, 3)}
    assert f.by_reminders == {REACHED: Rate(3, 1), MISSED: Rate(1, 1), NEVER: Rate(3, 2)}
    assert f.by_tier == {"A": Rate(2, 1), "B": Rate(2, 2)}
    assert sum(f.by_reminders.values(), Rate(0, 0)) == f.overall


async def test_per_cohort_when_several_run(tmp_path):
    db = open_db(f"sqlite:///{tmp_path / 'two.db'}")
    at = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with db.begin() as conn:
        for cid, n, bought in (("c1", 4, 1), ("c2", 5, 3)):
            repo.ensure_cohort(conn, cid, "pb", "room " + cid, date(2026, 12, 1), "Asia/Shanghai", at)
            for i in range(n):
                repo.member_joined(conn, cid, f"{cid}-u{i}", f"学员{i}", None, at)
            for i in range(bought):
                repo.add_conversion(conn, cid, f"{cid}-u{i}", at, "op1")
    with db.connect() as conn:
        both = every_cohort(conn, {})
    assert [(f.cohort_id, f.overall) for f in both] == [("c1", Rate(4, 1)), ("c2", Rate(5, 3))]
    assert both[0].by_completion == {} and both[0].lesson_track is None  # no playbook, no lesson days
    db.dispose()

    result = invoke("conversions", "--db", tmp_path / "two.db")
    assert result.exit_code == 0, result.output
    assert "c1, enrolled: 1 of 4 (25%)" in result.stdout and "c2, enrolled: 3 of 5 (60%)" in result.stdout
    only = invoke("--lang", "zh", "conversions", "--db", tmp_path / "two.db", "--cohort", "c2")
    assert only.exit_code == 0, only.output
    assert "c2 报名：5 人里 3 人（60%）" in only.stdout and "c1" not in only.stdout
    assert "收到过提醒" in only.stdout
