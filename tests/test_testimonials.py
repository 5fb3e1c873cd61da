"""Testimonials (心得) through the whole bot: a `testimonial: true` track keeps each check-in's
whole text (emoji, line breaks, 10 kB), a second one the same day too, a repeat once; 精选 /
取消精选 mark one (audited, operators only, a warning for a member who asked not to be
quoted); `cohortbot testimonials` shows them at 80 columns or writes them with name and
local time to xlsx or CSV, formula-looking names kept text."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from bot import i18n
from bot import playbook as playbooks
from bot.cli import app
from bot.testimonials import may_quote
from bot.transports.base import MAX_TEXT, clean_text
from bot.yamlfile import InputError
from storage import repo
from tests.harness import SAMPLE, load_playbook, members
from tests.test_operator_commands import ask

HOSTILE = '=HYPERLINK("http://x","y")'
PEOPLE = members("op1:王助教", "u01:小明", "u02:小红", f"u03:{HOSTILE}", "u04:王助教", "u05:🌟小星")
# About 10 kB in UTF-8 (the size of a long reflection), emoji and line breaks included; still
# within what the gateway transport passes on whole (MAX_TEXT characters).
LONG = ("心得：" + "这几天我第一次用 Python 处理了工作里的表格，循环和函数终于想明白了🎉🐍\n" * 98).rstrip()
SECOND = "心得 补充一句：谢谢助教每天的提醒 🙏"
PRIVATE = "心得：收获很大，但请不要引用我的话。不公开"


def test_the_long_text_is_what_a_real_gateway_passes_on_whole():
    assert len(LONG.encode()) >= 10_000
    assert len(LONG) <= MAX_TEXT and clean_text(LONG) == LONG


async def start(harness, now: str = "day 7 19:00", **kw):
    h = await harness(playbooks.load(SAMPLE), people=PEOPLE, operators=("op1",), now=now, **kw)
    h.bot.engine.router.desk.language = "en"
    return h


async def test_a_reflection_keeps_its_whole_text(harness):
    h = await start(harness, now="day 5 20:00")
    await h.say("u02", "打卡 今天把猜数字游戏写出来了")  # the lesson track keeps no text
    await h.until("day 7 19:00")
    await h.say("u01", LONG)
    await h.say("u01", SECOND)  # the same day: kept too (the rest of the story)
    await h.say("u01", LONG)  # the same text again (a message delivered twice): once
    await h.say("op1", "心得 助教也来说两句")  # operators' check-ins do not count, nor are kept
    await h.say("u05", "心得：🌟🌟🌟")
    await h.until("day 7 20:00")
    await h.settle()
    with h.bot.db.connect() as conn:
        kept = repo.testimonials(conn, "c1")
        assert [(t.member_id, t.day, t.track, t.text) for t in kept] == [
            ("u01", 7, "reflection", LONG),
            ("u01", 7, "reflection", SECOND),
            ("u05", 7, "reflection", "心得：🌟🌟🌟"),
        ]
        assert kept[0].name == "小明" and kept[0].featured_at is None
        assert repo.member_days(conn, "c1", "u01", "reflection") == [7]  # counted once
        assert repo.has_checkin(conn, "c1", "u02", "lesson", 5)
    rollcall = [s.text for s in h.room() if "rollcall" in s.kinds]
    assert any("小明" in t and "🌟小星" in t for t in rollcall)  # still named like any check-in


async def test_feature_marks_one_and_lists_the_latest(harness):
    h = await start(harness, now="day 7 19:00")
    assert "No testimonials yet" in await ask(h, "feature")
    await h.say("u01", "心得：第一条")
    await h.until("day 7 20:00")
    await h.say("u02", PRIVATE)
    await h.until("day 8 09:00")
    await h.say("u01", "心得：第二天又想到一些")
    await h.until("day 8 09:05")

    listed = await ask(h, "feature")
    lines = listed.splitlines()
    assert lines[0] == "[c1] The latest testimonials (⭐ featured, 🔒 asked not to be quoted):"
    assert lines[1] == "小明 · day 8 09:00: 心得：第二天又想到一些"  # newest first
    assert lines[2].startswith("小红 · day 7 20:00 🔒: 心得：收获很大")
    assert lines[3] == "小明 · day 7 19:00: 心得：第一条"

    assert await ask(h, "feature 小明 7") == "⭐ [c1] Featured: 小明, day 7 19:00: 心得：第一条"
    assert "Featured already" in await ask(h, "feature 小明 第7天")
    assert "day 8 09:00" in await ask(h, "feature 小明")  # the latest of a member
    warned = await ask(h, "feature 小红")
    assert warned.splitlines()[1] == "🔒 They asked not to be quoted: keep it out of anything public."
    assert await ask(h, "feature 小刚") == '[c1] No member "小刚" here.'
    assert await ask(h, "feature 🌟小星") == "[c1] No testimonial from 🌟小星."
    assert "day 7 19:00 ⭐: 心得：第一条" in await ask(h, "feature")
    assert await ask(h, "unfeature 小明 8") == "[c1] No longer featured: 小明, day 8 09:00."
    assert "has no featured testimonial on day 8" in await ask(h, "unfeature 小明 8")

    with h.bot.db.connect() as conn:
        featured = repo.testimonials(conn, "c1", featured_only=True)
        assert [(t.member_id, t.day, t.featured_by) for t in featured] == [
            ("u01", 7, "op1"),
            ("u02", 7, "op1"),
        ]
        actions = [(op, act) for _, op, act, _ in repo.actions(conn, "c1")]
    assert actions == [("op1", "unfeature"), ("op1", "feature"), ("op1", "feature"), ("op1", "feature")]


async def test_a_member_named_like_an_operator_cannot_feature(harness):
    h = await start(harness)
    await h.say("u01", "心得：第一条")
    await h.settle()
    await h.dm("u04", "精选 小明")  # u04 is called 王助教 too, but is no operator
    await h.say("u04", "@CohortBot 精选 小明")
    await h.settle()
    assert not [s for s in h.dms("u04") if "survey" not in s.kinds]  # (the intake survey is for everyone)
    with h.bot.db.connect() as conn:
        assert not repo.testimonials(conn, "c1", featured_only=True)
        assert not repo.actions(conn, "c1")


async def test_feature_answers_in_chinese(harness):
    h = await start(harness)
    h.bot.engine.router.desk.language = "zh"
    await h.say("u02", PRIVATE)
    await h.until("day 7 19:05")
    listed = await ask(h, "精选")
    assert listed.splitlines()[0] == "【c1】最近的心得（⭐ 已精选，🔒 不希望被引用）："
    assert "发「精选 名字」" in listed
    reply = await ask(h, "精选 小红")
    assert reply.splitlines() == [
        "⭐ 【c1】已精选：小红，第 7 天 19:00：心得：收获很大，但请不要引用我的话。不公开",
        "🔒 这位同学不希望被引用：请不要用在任何公开的地方。",
    ]
    assert "「精选 [名字] [第几天] [期号]」" in await ask(h, "帮助")


def test_a_text_asking_not_to_be_quoted_is_marked():
    assert (
        not may_quote(PRIVATE) and not may_quote("心得……（请勿公开）") and not may_quote("Not public, please")
    )
    assert may_quote(LONG) and may_quote("心得：公开课很棒")


# --- the playbook field -----------------------------------------------------------------------


def test_the_sample_keeps_its_reflections():
    pb = playbooks.load(SAMPLE)
    assert [k for k, t in pb.tracks.items() if t.testimonial] == ["reflection"]


def test_testimonial_must_be_true_or_false(tmp_path):
    text = SAMPLE.read_text(encoding="utf-8").replace("testimonial: true", "testimonial: maybe")
    path = tmp_path / "pb.yaml"
    path.write_text(text, encoding="utf-8")
    line = text.splitlines().index(next(x for x in text.splitlines() if "testimonial: maybe" in x)) + 1
    with pytest.raises(InputError) as e:
        playbooks.load(path)
    [p] = e.value.problems
    assert p.line == line and "tracks.reflection.testimonial" in str(p) and "boolean" in str(p)
    i18n.use("zh")
    with pytest.raises(InputError) as e:
        playbooks.load(path)
    assert "这里要写 true 或 false" in str(e.value.problems[0])


# --- cohortbot testimonials -------------------------------------------------------------------


def invoke(*args: str | Path, columns: int = 200):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})


@pytest.fixture
async def played(harness, tmp_path) -> Path:
    """A database file with testimonials from every kind of name, one featured."""
    db = tmp_path / "bot.db"
    h = await start(harness, db_url=f"sqlite:///{db}")
    await h.say("u01", LONG)
    await h.say("u03", "心得：=1+1 也是一种写法")
    await h.say("u05", "心得 🌟")
    await h.until("day 7 19:30")
    await h.say("u02", PRIVATE)
    await h.until("day 7 19:31")
    await ask(h, "feature 小明")
    await h.stop()
    return db


def read_csv(path: Path) -> list[dict[str, str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


async def test_the_export_has_every_text_whole_with_name_and_local_time(played, tmp_path):
    result = invoke(
        "testimonials", "--db", played, "--xlsx", tmp_path / "out" / "t.xlsx", "--csv", tmp_path / "t.csv"
    )
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'out' / 't.xlsx'}: 4 testimonials" in result.stdout

    ws = openpyxl.load_workbook(tmp_path / "out" / "t.xlsx")["testimonials"]
    rows = list(ws.iter_rows(min_row=1))
    head = [c.value for c in rows[0]]
    assert head == [
        "day",
        "track",
        "member id",
        "name",
        "written at (Asia/Shanghai)",
        "featured (精选)",
        "featured by",
        "may be quoted",
        "characters",
        "text",
    ]
    by_id = {r[2].value: dict(zip(head, r, strict=True)) for r in rows[1:]}
    u01 = by_id["u01"]
    assert u01["text"].value == LONG and u01["characters"].value == len(LONG)
    assert u01["written at (Asia/Shanghai)"].value == datetime(2026, 12, 7, 19, 0)
    assert (u01["featured (精选)"].value, u01["featured by"].value) == ("yes", "王助教")
    hostile = by_id["u03"]["name"]
    assert (hostile.value, hostile.data_type, hostile.quotePrefix) == (HOSTILE, "s", True)
    assert by_id["u05"]["name"].value == "🌟小星"
    assert by_id["u02"]["may be quoted"].value == "no" and by_id["u01"]["may be quoted"].value == "yes"

    table = {r["member id"]: r for r in read_csv(tmp_path / "t.csv")}
    assert table["u01"]["text"] == LONG
    assert table["u03"]["name"] == "'" + HOSTILE  # OWASP: Excel shows it as text
    assert table["u05"]["name"] == "🌟小星"
    assert table["u02"]["written at (Asia/Shanghai)"] == "2026-12-07 19:30:00"

    featured = invoke("testimonials", "--db", played, "--featured", "--csv", tmp_path / "f.csv")
    assert featured.exit_code == 0, featured.output
    assert [r["member id"] for r in read_csv(tmp_path / "f.csv")] == ["u01"]


async def test_the_terminal_table_fits_80_columns(played):
    result = invoke("testimonials", "--db", played, columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    assert "c1: 4 testimonials" in result.stdout
    assert any("小明" in line and "⭐" in line and "心得：这几天" in line for line in lines)
    assert any("小红" in line and "🔒" in line for line in lines)
    assert any(HOSTILE[:8] in line for line in lines)


async def test_in_chinese_the_headers_are_chinese(played, tmp_path):
    result = invoke("--lang", "zh", "testimonials", "--db", played, "--csv", tmp_path / "t.csv")
    assert result.exit_code == 0, result.output
    assert "条心得" in result.stdout
    head = next(iter(read_csv(tmp_path / "t.csv")))
    assert {"名字", "精选", "可否引用", "内容"} <= set(head)


@pytest.mark.parametrize(
    "args, said",
    [
        (["--db", "missing.db"], "there is no database file"),
        ([], "name the database with --config FILE or --db URL"),
        (["--db", "DB", "--cohort", "nope"], "no cohort 'nope'"),
        (["--db", "DB", "--xlsx", "/proc/nope/t.xlsx"], "t.xlsx"),
    ],
)
async def test_bad_input_is_one_line_and_exit_2(played, tmp_path, args, said):
    result = invoke("testimonials", *[str(played) if a == "DB" else a for a in args])
    assert result.exit_code == 2, result.output
    assert said in result.output and "Traceback" not in result.output


LATE = """\
name: 测试营
days: 3
timezone: Asia/Shanghai
tracks:
  reflection:
    name: 心得
    keywords: ["心得"]
    days: [2]
    until: "12:00"
    testimonial: true
"""


async def test_a_late_one_is_kept_but_not_counted_and_another_day_keeps_nothing(harness):
    h = await harness(load_playbook(LATE), people=PEOPLE, operators=("op1",), now="day 2 13:00")
    await h.say("u01", "心得：晚了一点，但还是想写")
    await h.until("day 3 10:00")
    await h.say("u02", "心得：第三天才来")  # not a day of the track
    await h.settle()
    with h.bot.db.connect() as conn:
        assert [(t.member_id, t.day) for t in repo.testimonials(conn, "c1")] == [("u01", 2)]
        assert not repo.has_checkin(conn, "c1", "u01", "reflection", 2)
