"""`cohortbot export`: a cohort played through the whole bot, then exported from its database
by the CLI and read back with openpyxl and csv: the numbers are the database's, the times
are local, the Chinese headers are there, a CSV opens in Excel (BOM), names that look like
formulas stay text; bad input is one line and exit 2; the database is never written."""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text, update
from typer.testing import CliRunner

from bot import report_views
from bot.cli import app
from bot.export import ExportError, makeup
from storage import migrate, repo
from storage.db import open_db
from storage.readonly import CannotRead, open_readonly
from tests.harness import Harness, members, scratch_postgres

ENV = {"COLUMNS": "200"}
ZONE = ZoneInfo("Asia/Shanghai")
HOSTILE = {"u03": '=HYPERLINK("http://x","y")', "u04": "@SUM(1)", "u05": "-1+1"}
PEOPLE = members("u01:小明", "u02:小红", *(f"{k}:{v}" for k, v in HOSTILE.items()), "op1:王老师")
SHEETS = ["members", "check-ins", "rewards", "sends"]


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def local(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(ZONE).replace(tzinfo=None, microsecond=0)


def table(path: Path, sheet: str) -> list[dict[str, object]]:
    ws = openpyxl.load_workbook(path)[sheet]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


async def play(h: Harness) -> None:
    """Days 2-5: u01 reads every morning (the reward pack), the hostile names check in on
    day 2, u02 leaves on day 3, u05 is no friend of the account (the day-3 nudge is refused)."""
    h.group.strangers = {"u05"}
    for day in (2, 3, 4, 5):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读打卡")
        if day == 2:
            await h.say("u03", "打卡")
            await h.say("u04", "打卡")
            await h.say("u05", "晨读")  # not the lesson: nudged about it on day 3
        await h.say("u01", "打卡")
        if day == 3:
            await h.group.leave("u02")
        await h.until(f"day {day} 09:30")
    await h.settle()


def db_counts(url: str) -> dict[str, object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {
            "members": conn.execute(select(func.count()).select_from(repo.member_t)).scalar(),
            "checkins": conn.execute(select(func.count()).select_from(repo.checkin_t)).scalar(),
            "grants": conn.execute(select(func.count()).select_from(repo.grant_t)).scalar(),
            "sends": conn.execute(select(func.count()).select_from(repo.out_t)).scalar(),
            "u02": conn.execute(select(repo.member_t).where(repo.member_t.c.member_id == "u02")).one(),
            "u05": conn.execute(select(repo.member_t).where(repo.member_t.c.member_id == "u05")).one(),
            "grant": conn.execute(select(repo.grant_t)).one(),
            "statuses": sorted(conn.execute(select(repo.out_t.c.status)).scalars()),
        }
    engine.dispose()
    return out


def fingerprint(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file in the folder: its content's hash and its modification time."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


@pytest.fixture
async def played(harness, tmp_path):
    """The database file of a short cohort played to day 5 09:30, the bot stopped."""
    db = tmp_path / "db" / "bot.db"
    db.parent.mkdir()
    h = await harness(people=PEOPLE, operators=("op1",), now="day 2 07:45", db_url=f"sqlite:///{db}")
    await play(h)
    await h.stop()
    return db


# --- what is exported -----------------------------------------------------------------------


async def test_the_workbook_holds_what_the_database_holds_in_local_time(played, tmp_path):
    url = f"sqlite:///{played}"
    before = fingerprint(played.parent)
    result = invoke("export", "--db", played, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    book = tmp_path / "out" / "c1.xlsx"
    assert f"wrote {book}" in result.stdout
    assert fingerprint(played.parent) == before  # not a byte written, no -wal or -shm left
    assert openpyxl.load_workbook(book).sheetnames == SHEETS

    db = db_counts(url)
    people = table(book, "members")
    checkins = table(book, "check-ins")
    rewards = table(book, "rewards")
    sends = table(book, "sends")
    assert (len(people), len(checkins), len(rewards), len(sends)) == (
        db["members"],
        db["checkins"],
        db["grants"],
        db["sends"],
    )
    assert f"members: {len(people)}, check-ins: {len(checkins)}" in result.stdout
    by_id = {m["member id"]: m for m in people}
    assert by_id["op1"]["role"] == "operator" and by_id["u01"]["role"] == "member"
    u02 = by_id["u02"]
    assert u02["still in the group"] == "no"
    assert u02["left at (Asia/Shanghai)"] == local(db["u02"].left_at)  # type: ignore[attr-defined]
    assert u02["left at (Asia/Shanghai)"].date().isoformat() == "2026-12-03"
    assert isinstance(u02["joined at (Asia/Shanghai)"], datetime)
    assert by_id["u05"]["reachable privately"] == "no" and by_id["u01"]["reachable privately"] == "yes"
    assert by_id["u01"]["check-ins"] == 8 and by_id["u01"]["rewards"] == 1

    # The first check-in of the cohort: day 2, 08:00 Shanghai time (00:00 UTC), in the sheet.
    first = checkins[0]
    assert (first["day"], first["checked in at (Asia/Shanghai)"]) == (2, datetime(2026, 12, 2, 8, 0))
    assert {c["track"] for c in checkins} == {"lesson", "reading"}  # ids: --db has no playbook
    assert all(c["make-up"] is None for c in checkins)

    [grant] = rewards
    g = db["grant"]
    assert (grant["reward"], grant["member id"], grant["name"]) == ("reading-pack", "u01", "小明")
    assert grant["granted at (Asia/Shanghai)"] == local(g.at)  # type: ignore[attr-defined]

    labels = {"sent": "sent", "unreachable": "not sent: not the account's friend"}
    assert Counter(s["status"] for s in sends) == Counter(labels[s] for s in db["statuses"])  # type: ignore[union-attr]
    nudge = next(s for s in sends if s["sent to (id)"] == "u05")
    assert (nudge["kind"], nudge["chat"], nudge["status"], nudge["sent to"]) == (
        "nudge",
        "private",
        "not sent: not the account's friend",
        "-1+1",
    )
    assert nudge["error"]
    rollcall = next(s for s in sends if s["kind"] == "roll call")
    assert (rollcall["chat"], rollcall["sent to"]) == ("group", "训练营 1 班")
    assert "小明" in rollcall["text"]


async def test_names_that_look_like_formulas_stay_text(played, tmp_path):
    assert invoke("export", "--db", played, "--out", tmp_path).exit_code == 0
    ws = openpyxl.load_workbook(tmp_path / "c1.xlsx")["members"]
    cells = {row[0].value: row[1] for row in ws.iter_rows(min_row=2)}
    for mid, name in HOSTILE.items():
        cell = cells[mid]
        assert cell.value == name  # shown exactly as the member wrote it,
        assert cell.data_type == "s"  # as text, not a formula ("f"),
        assert cell.quotePrefix  # and Excel's apostrophe keeps it text when the cell is edited
    assert not cells["u01"].quotePrefix

    assert invoke("export", "--db", played, "--out", tmp_path, "--format", "csv").exit_code == 0
    names = {m["member id"]: m["name"] for m in read_csv(tmp_path / "c1-members.csv")}
    assert names["u01"] == "小明"
    assert {mid: names[mid] for mid in HOSTILE} == {mid: "'" + name for mid, name in HOSTILE.items()}


def test_openpyxl_makes_a_formula_of_such_text_unless_told():
    """Why the writer sets the type: a plain assignment would store a formula."""
    ws = openpyxl.Workbook().active
    assert ws.cell(row=1, column=1, value='=HYPERLINK("http://x","y")').data_type == "f"


async def test_csv_files_have_a_byte_order_mark_and_the_same_rows(played, tmp_path):
    result = invoke("export", "--db", played, "--out", tmp_path / "csv", "--format", "csv")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "csv").iterdir())
    assert files == ["c1-checkins.csv", "c1-members.csv", "c1-rewards.csv", "c1-sends.csv"]
    for name in files:
        assert (tmp_path / "csv" / name).read_bytes().startswith(b"\xef\xbb\xbf")
    db = db_counts(f"sqlite:///{played}")
    people = read_csv(tmp_path / "csv" / "c1-members.csv")
    checkins = read_csv(tmp_path / "csv" / "c1-checkins.csv")
    assert (len(people), len(checkins)) == (db["members"], db["checkins"])
    assert len(read_csv(tmp_path / "csv" / "c1-sends.csv")) == db["sends"]
    u02 = next(m for m in people if m["member id"] == "u02")
    left = local(db["u02"].left_at)  # type: ignore[attr-defined]
    assert u02["left at (Asia/Shanghai)"] == f"{left:%Y-%m-%d %H:%M:%S}"
    assert checkins[0]["checked in at (Asia/Shanghai)"] == "2026-12-02 08:00:00"
    assert next(m for m in people if m["member id"] == "u01")["left at (Asia/Shanghai)"] == ""


async def test_chinese_headers_and_words_for_a_chinese_operator(played, tmp_path):
    result = invoke("--lang", "zh", "export", "--db", played, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "已写入" in result.stdout
    book = tmp_path / "c1.xlsx"
    assert openpyxl.load_workbook(book).sheetnames == ["成员", "打卡", "奖励", "发送"]
    people = table(book, "成员")
    assert {"成员 id", "名字", "身份", "能私信", "入群时间（Asia/Shanghai）"} <= set(people[0])
    assert {m["身份"] for m in people} == {"学员", "运营"}
    assert "补卡" in table(book, "打卡")[0]
    assert {"已发送", "未发送：不是好友"} <= {s["状态"] for s in table(book, "发送")}

    assert (
        invoke("--lang", "zh", "export", "--db", played, "--out", tmp_path, "--format", "csv").exit_code == 0
    )
    header = (tmp_path / "c1-rewards.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header == '"奖励","成员 id","名字","获得时间（Asia/Shanghai）"'


async def test_with_the_config_tracks_and_rewards_have_their_names(played, tmp_path):
    from tests.harness import EXAMPLE

    (tmp_path / "pb.yaml").write_text(EXAMPLE, encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"database: sqlite:///{played}\ntransport: {{kind: simulated}}\n"
        "cohorts:\n  - {id: c1, playbook: pb.yaml, room: 训练营 1 班, start: 2026-12-01}\n",
        encoding="utf-8",
    )
    result = invoke("export", "--config", cfg, "--cohort", "c1", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert {c["track"] for c in table(tmp_path / "out" / "c1.xlsx", "check-ins")} == {"正课", "晨读"}
    assert [r["reward"] for r in table(tmp_path / "out" / "c1.xlsx", "rewards")] == ["资料大礼包"]


def test_the_make_up_column():
    ordinary = SimpleNamespace(member_id="u01")  # a database from before make-ups
    assert makeup(ordinary, {}) == ""
    assert makeup(SimpleNamespace(member_id="u01", makeup_by=None), {}) == ""
    assert makeup(SimpleNamespace(member_id="u01", makeup_by="u01"), {}) == "self"
    assert makeup(SimpleNamespace(member_id="u01", makeup_by="op1"), {"op1": "王老师"}) == "王老师"
    assert makeup(SimpleNamespace(member_id="u01", makeup_by="op9"), {}) == "op9"


@pytest.mark.skipif("makeup_by" not in repo.checkin_t.c, reason="check-ins have no makeup_by column yet")
async def test_make_ups_are_marked_with_who_credited_them(played, tmp_path):
    engine = create_engine(f"sqlite:///{played}")
    with engine.begin() as conn:
        c = repo.checkin_t
        conn.execute(update(c).where(c.c.member_id == "u01", c.c.day == 2).values(makeup_by="u01"))
        conn.execute(update(c).where(c.c.member_id == "u03").values(makeup_by="op1"))
    engine.dispose()
    assert invoke("--lang", "zh", "export", "--db", played, "--out", tmp_path).exit_code == 0
    marks = {(c["成员 id"], c["第几天"], c["打卡项"]): c["补卡"] for c in table(tmp_path / "c1.xlsx", "打卡")}
    assert marks[("u01", 2, "lesson")] == marks[("u01", 2, "reading")] == "自补"
    assert marks[("u03", 2, "lesson")] == "王老师"
    assert marks[("u01", 3, "lesson")] is None


async def test_export_while_the_bot_runs_leaves_it_running(harness, tmp_path):
    db = tmp_path / "bot.db"
    h = await harness(people=PEOPLE, operators=("op1",), now="day 2 07:45", db_url=f"sqlite:///{db}")
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.settle()
    assert invoke("export", "--db", db, "--out", tmp_path / "out").exit_code == 0
    assert [c["member id"] for c in table(tmp_path / "out" / "c1.xlsx", "check-ins")] == ["u01"]
    await h.say("u02", "打卡")  # the bot still writes its database
    await h.settle()
    with h.bot.db.connect() as conn:
        assert repo.checked_in_ids(conn, "c1", "lesson", 2) == {"u01", "u02"}


@pytest.mark.postgres
async def test_export_from_postgresql(harness, tmp_path):
    url = scratch_postgres()
    h = await harness(people=PEOPLE, operators=("op1",), now="day 2 07:45", db_url=url)
    await play(h)
    await h.stop()
    result = invoke("export", "--db", url, "--out", tmp_path, "--format", "csv")
    assert result.exit_code == 0, result.output
    db = db_counts(url)
    assert len(read_csv(tmp_path / "c1-checkins.csv")) == db["checkins"]
    assert len(read_csv(tmp_path / "c1-sends.csv")) == db["sends"]


# --- bad input: one line, exit 2 ------------------------------------------------------------


def assert_refused(result, *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


def cohorts_db(path: Path, *ids: str) -> Path:
    engine = open_db(f"sqlite:///{path}")
    with engine.begin() as conn:
        for cid in ids:
            repo.ensure_cohort(
                conn, cid, "pb", "room", datetime(2026, 12, 1).date(), "Asia/Shanghai", datetime.now(ZONE)
            )
    engine.dispose()
    return path


def test_an_unknown_cohort_is_refused_with_the_cohorts_there(tmp_path):
    db = cohorts_db(tmp_path / "bot.db", "py-a", "py-b")
    assert_refused(
        invoke("export", "--db", db, "--cohort", "py-c", "--out", tmp_path / "o"), "'py-c'", "py-a, py-b"
    )
    assert_refused(
        invoke("export", "--db", db, "--out", tmp_path / "o"), "2 cohorts", "--cohort", "py-a, py-b"
    )
    assert not (tmp_path / "o").exists()  # nothing made for an export that did not happen
    one = cohorts_db(tmp_path / "one.db", "py-a")
    assert invoke("export", "--db", one, "--out", tmp_path / "o").exit_code == 0
    assert (tmp_path / "o" / "py-a.xlsx").is_file()
    assert_refused(
        invoke("export", "--db", cohorts_db(tmp_path / "none.db"), "--out", tmp_path), "no cohort yet"
    )


def test_a_folder_that_cannot_be_written_is_refused(tmp_path):
    db = cohorts_db(tmp_path / "bot.db", "py-a")
    blocker = tmp_path / "notes.txt"
    blocker.write_text("x")
    assert_refused(invoke("export", "--db", db, "--out", blocker), "is a file, not a folder")
    assert_refused(invoke("export", "--db", db, "--out", blocker / "sub"), str(blocker), "not a folder")
    # Said with the option typed, not an --out that `testimonials` and `report` do not have.
    said = f"cannot write {blocker / 't.csv'}: {blocker} is a file, not a folder"
    assert_refused(invoke("testimonials", "--db", db, "--csv", blocker / "t.csv"), said)
    with pytest.raises(ExportError, match=f"^--csv {re.escape(str(blocker))}: .* not a folder"):
        report_views.write_csv(None, blocker)  # type: ignore[arg-type]  # refused before it is read
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_refused(invoke("export", "--db", db, "--out", locked), "may not write in")


def test_a_missing_database_file_is_refused_and_not_created(tmp_path):
    missing = tmp_path / "typo.db"
    assert_refused(
        invoke("export", "--db", missing, "--out", tmp_path / "o"), "no database file", str(missing)
    )
    assert_refused(
        invoke("export", "--db", f"sqlite:///{missing}", "--out", tmp_path / "o"), "no database file"
    )
    assert list(tmp_path.iterdir()) == []
    assert_refused(invoke("export", "--db", tmp_path, "--out", tmp_path / "o"), "is a folder")


def test_what_is_not_a_cohortbot_database_is_refused(tmp_path):
    other = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{other}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (x TEXT)"))
    engine.dispose()
    assert_refused(invoke("export", "--db", other, "--out", tmp_path / "o"), "not a cohortbot database")
    garbage = tmp_path / "config.yaml"
    garbage.write_text("database: x\n" * 200)
    assert_refused(invoke("export", "--db", garbage, "--out", tmp_path / "o"), "not a cohortbot database")
    assert_refused(invoke("export", "--db", "nosuch://x", "--out", tmp_path / "o"), "nosuch")


def test_a_database_of_an_older_or_newer_schema_is_refused(tmp_path):
    old = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{old}")
    cfg = migrate.alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    before = old.read_bytes()
    assert_refused(
        invoke("export", "--db", old, "--out", tmp_path / "o"), "older schema", "0001", "cohortbot run"
    )
    assert old.read_bytes() == before  # not upgraded behind the operator's back

    new = cohorts_db(tmp_path / "new.db", "py-a")
    engine = create_engine(f"sqlite:///{new}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    assert_refused(
        invoke("export", "--db", new, "--out", tmp_path / "o"), "newer cohortbot", "upgrade cohortbot"
    )


def test_the_read_only_engine_cannot_write(tmp_path):
    db = cohorts_db(tmp_path / "bot.db", "py-a")
    engine = open_readonly(f"sqlite:///{db}")
    with pytest.raises(Exception, match="readonly"), engine.begin() as conn:
        conn.execute(text("DELETE FROM cohort"))
    engine.dispose()
    with pytest.raises(CannotRead, match="in-memory"):
        open_readonly("sqlite://")


def test_the_command_line_says_what_to_write(tmp_path):
    db = cohorts_db(tmp_path / "bot.db", "py-a")
    assert_refused(invoke("export", "--out", tmp_path), "--config", "--db")
    assert_refused(invoke("export", "--config", tmp_path / "nope.yaml", "--out", tmp_path), "nope.yaml")
    assert_refused(
        invoke("export", "--db", db, "--out", tmp_path, "--format", "xls"), "--format xls", "xlsx or csv"
    )
    zh = invoke("--lang", "zh", "export", "--db", db, "--out", tmp_path, "--cohort", "x")
    assert_refused(zh, "里没有训练营「x」", "py-a")
