"""`cohortbot demo` on any playbook, `simulate --transcript`, `preview` and the tables at 80
columns, and config.example.yaml as shipped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from typer.testing import CliRunner

from bot import playbook as playbooks
from bot import scenario as scenarios
from bot.checkins import match_track, normalize
from bot.cli import app
from bot.cohort import CohortRun
from bot.demo import demo_scenario, window
from bot.plan import calendar
from bot.scenario import Scenario, timeline
from bot.simulate import simulate
from bot.transcript import wrap_offsets
from tests.harness import ROOT, SAMPLE

ENV = {"COLUMNS": "80"}
PLAYBOOKS = sorted(
    p
    for folder in (ROOT / "playbooks", ROOT / "docs" / "examples")
    for p in folder.glob("*.yaml")
    if not p.name.endswith(".scenario.yaml")
)
SCENARIO = ROOT / "playbooks" / "python-8day.scenario.yaml"

# Legal, but unlike the samples: one day, a cut-off after midnight (before `day_starts`), a
# track acknowledged one by one, a keyword that starts another track's keyword, no
# mute command, no schedule at all.
ODD = """\
name: 一天冲刺
days: 1
day_starts: "05:00"
tracks:
  hw:
    name: 作业
    keywords: ["打卡"]
    days: [1]
    until: "02:00"
  hw_plus:
    name: 附加题
    keywords: ["打卡附加题"]
    days: [1]
    acknowledge: each
    ack: "✅ {name} 附加题 {done}/{total}"
"""
TWO_DAYS = """\
name: 两天营
days: 2
tracks:
  x-1:
    name: 练习
    keywords: ["练"]
    days: [2]
    until: "09:00"
rewards:
  - {id: r, name: 小奖, track: x-1, count: 1, dm: "{name} 得到{reward}"}
commands:
  mute: ["别@我"]
schedule:
  - {day: 2, at: "08:30", remind: {track: x-1, text: "还差 {total} - {done} 人"}}
  - {day: 2, at: "12:00", leaderboard: {track: x-1}}
"""
WITH_TOTAL = TWO_DAYS + '  - {day: 1, at: "20:00", post: "本群 {total} 位同学一起出发"}\n'


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def assert_fits(text: str, width: int = 80) -> None:
    wide = [line for line in text.splitlines() if cell_len(line) > width]
    assert not wide, wide[:3]


@pytest.fixture
def odd(tmp_path: Path) -> dict[str, Path]:
    paths = {"odd": tmp_path / "odd.yaml", "two": tmp_path / "two.yaml"}
    paths["odd"].write_text(ODD, encoding="utf-8")
    paths["two"].write_text(TWO_DAYS, encoding="utf-8")
    return paths


# ---------------------------------------------------------------- the generated members


# Mostly small groups (fast); now and then a big one.
members_n = st.one_of(*[st.integers(1, 8)] * 5, st.integers(1, 500))


@settings(max_examples=40, deadline=None, database=None)
@given(path=st.sampled_from(PLAYBOOKS), members=st.integers(1, 500), seed=st.integers(-(2**64), 2**64))
def test_the_generated_scenario_is_always_valid(path, members, seed):
    pb = playbooks.load(path)
    sc, habits = demo_scenario(pb, members, seed)
    events = timeline(sc, calendar(pb, sc.start))  # raises on anyone speaking outside the group
    assert len(sc.members) == members + 1  # and the operator
    assert sum(1 for e in events if e.kind == "join") == 2
    assert sum(1 for e in events if e.kind == "leave") == 1
    assert set(habits) == {m.id for m in sc.members} | {e.member.id for e in events if e.kind == "join"}


@settings(
    max_examples=5, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PLAYBOOKS), members=members_n, seed=st.integers(-(2**32), 2**32))
def test_demo_never_crashes(path, members, seed):
    args = ["demo", path, "--members", members, "--seed", seed]
    result = invoke(*args, *(["--quiet"] if members > 30 else []))
    assert result.exit_code == 0, (result.output, result.exception)
    for title in ("Check-ins per day and track", "Rewards granted", "How much the bot said, per day"):
        assert title in result.stdout
    assert_fits(result.stdout)


@pytest.mark.parametrize("which", ["odd", "two"])
def test_demo_plays_unusual_playbooks(odd, which):
    for members, seed in ((1, 0), (2, 5), (7, 8), (40, 123)):
        result = invoke("demo", odd[which], "--members", members, "--seed", seed)
        assert result.exit_code == 0, (which, members, seed, result.output, result.exception)
        assert "Traceback" not in result.output


def test_habits_follow_the_playbook(odd):
    """Check-ins use each track's own keywords on its own days, around its cut-offs; every
    command is asked, mute and unmute included; two join, one leaves."""
    for path in [*PLAYBOOKS, odd["odd"], odd["two"]]:
        pb = playbooks.load(path)
        sc, _ = demo_scenario(pb, 60, 8)
        cal = calendar(pb, sc.start)
        run = CohortRun.create("t", pb, cal, "room")
        events = timeline(sc, cal)
        said = [e for e in events if e.kind in ("say", "dm")]
        texts = {normalize(e.text.removeprefix("@CohortBot ")) for e in said}
        for name, words in pb.commands:
            if words:
                assert texts & {normalize(w) for w in words}, (path, name)
        for tid, track in pb.tracks.items():
            counted = late = 0
            for e in said:
                found = match_track(run, normalize(e.text.removeprefix("@CohortBot ")))
                if found and found[0] == tid:
                    day = cal.day_of(e.at)
                    on_time = track.until is None or e.at < cal.deadline(day, track.until)
                    counted += day in track.days and on_time
                    late += not on_time
            assert counted >= len(track.days) * 5, (path, tid, counted)
            if track.until is not None and len(track.days) >= 3:
                assert late, (path, tid)  # some miss the cut-off, and are told
        assert sorted(e.kind for e in events if e.kind in ("join", "leave")) == ["join", "join", "leave"]


def test_the_sample_window_follows_its_reminders_and_cut_offs():
    pb = playbooks.load(SAMPLE)
    reading, lesson = window(pb, "reading", 2), window(pb, "lesson", 2)
    day2 = 24 * 60
    assert reading.mark == day2 + 11 * 60 + 30  # the 11:30 reminder
    assert reading.close == day2 + 12 * 60 and reading.cutoff  # until 12:00
    assert lesson.mark == day2 + 21 * 60 + 30
    assert lesson.close == 2 * day2 + 4 * 60 and not lesson.cutoff  # day_starts 04:00


@pytest.mark.parametrize("members", [0, 501, -1])
def test_bad_member_counts_are_a_clear_error(members):
    result = invoke("demo", "--members", members)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert f"--members {members}: write a number from 1 to 500" in result.stderr
    with pytest.raises(ValueError, match="1 to 500"):
        demo_scenario(playbooks.load(SAMPLE), members)


def test_demo_of_a_broken_playbook(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndays: 0\ntracks: {}\n", encoding="utf-8")
    result = invoke("demo", bad)
    assert result.exit_code == 2
    assert f"{bad}:2" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- demo --db


def test_demo_db_refuses_an_existing_file_unless_fresh(tmp_path):
    db = tmp_path / "demo.db"
    first = invoke("demo", "--quiet", "--members", 5, "--db", db)
    assert first.exit_code == 0, first.output
    assert db.exists() and "the database is in" in first.stdout
    size = db.stat().st_size

    again = invoke("demo", "--quiet", "--members", 5, "--db", db)
    assert again.exit_code == 2
    assert isinstance(again.exception, SystemExit)
    said = " ".join(again.stderr.split())
    assert "already exists" in said and "mix with the earlier rehearsal" in said and "--fresh" in said
    assert db.stat().st_size == size  # untouched

    fresh = invoke("demo", "--quiet", "--members", 7, "--seed", 2, "--db", db, "--fresh")
    assert fresh.exit_code == 0, fresh.output
    assert "--fresh: deleted the old" in fresh.stdout
    import sqlite3

    with sqlite3.connect(db) as conn:
        (members,) = conn.execute("select count(*) from member where role = 'member'").fetchone()
    assert members == 7 + 2  # this rehearsal's only: 7 and the 2 who joined


def test_demo_fresh_deletes_only_a_rehearsal(tmp_path):
    # --db given a bot's database or another file by mistake: --fresh must not delete it.
    import sqlite3

    from storage.db import open_db

    notes = tmp_path / "notes.txt"
    notes.write_text("the assistants' notes\n" * 10, encoding="utf-8")
    bot_db, logins_db = tmp_path / "bot.db", tmp_path / "logins.db"
    for path in (bot_db, logins_db):
        open_db(f"sqlite:///{path}").dispose()
    with sqlite3.connect(bot_db) as conn:
        conn.execute(
            "INSERT INTO cohort (id, playbook, room, start, timezone, created_at) "
            "VALUES ('py-a', 'x', 'r', '2026-12-01', 'Asia/Shanghai', '2026-11-30 00:00:00')"
        )
    add = ["operator", "add", "alice", "--db", logins_db, "--password-stdin"]
    assert CliRunner().invoke(app, [str(a) for a in add], input="a long password\n").exit_code == 0
    for path, why in [(notes, "not a cohortbot database"), (bot_db, "cohorts py-a"), (logins_db, "logins")]:
        result = invoke("demo", "--quiet", "--members", 3, "--db", path, "--fresh")
        assert result.exit_code == 2, result.output
        assert "--fresh deletes only a rehearsal's database" in result.stderr and why in result.stderr
    assert notes.read_text(encoding="utf-8").startswith("the assistants' notes")
    with sqlite3.connect(bot_db) as conn, sqlite3.connect(logins_db) as other:
        assert conn.execute("SELECT id FROM cohort").fetchall() == [("py-a",)]
        assert other.execute("SELECT name FROM web_login").fetchall() == [("alice",)]


def test_demo_db_in_a_missing_folder(tmp_path):
    result = invoke("demo", "--quiet", "--db", tmp_path / "nope" / "demo.db")
    assert result.exit_code == 2
    assert "folder does not exist" in result.stderr


# ---------------------------------------------------------------- simulate --transcript


def test_transcript_shows_whole_texts_every_name_and_the_tables(tmp_path):
    out = tmp_path / "sent.jsonl"
    result = invoke("simulate", SAMPLE, SCENARIO, "--transcript", "--out", out)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert '"chat":' not in text  # the JSON Lines went to --out only
    sent = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    plain = invoke("simulate", SAMPLE, SCENARIO)
    assert [json.loads(line) for line in plain.stdout.splitlines()] == sent
    # The transcript's lines without their times, joined: each message's text is in it whole.
    flat = "".join(line[9:] for line in text.splitlines() if line[:2].isdigit() or line.startswith(" " * 9))
    flat = flat.replace(" ", "")
    for s in sent:
        for line in s["text"].splitlines():
            assert line.replace(" ", "") in flat, line  # whole, not cut with …
    assert "…+" not in text
    sc, _ = scenarios.load(SCENARIO)
    names = {m.id: m.alias or m.name for m in [*sc.members, *(e.join for e in sc.events if e.join)]}
    for s in sent:
        for mid in s["mentions"]:
            assert f"@{names[mid]}".replace(" ", "") in flat
    for title in ("Check-ins per day and track", "Rewards granted", "How much the bot said, per day"):
        assert title in text
    assert_fits(text)


def test_transcript_without_out_prints_no_json():
    result = invoke("simulate", SAMPLE, SCENARIO, "--transcript")
    assert result.exit_code == 0, result.output
    assert '"chat":' not in result.stdout and '"chat":' not in result.stderr


def test_simulate_config_sets_pacing_quiet_hours_and_zone(tmp_path):
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(TWO_DAYS.replace('until: "09:00"', 'until: "23:59"'), encoding="utf-8")
    scenario = tmp_path / "sc.yaml"
    scenario.write_text(
        textwrap.dedent("""\
            start: 2026-12-01
            members: [{id: u01, name: 小明}, {id: u02, name: 小红}]
            events:
              - {at: "day 2 23:00", from: u01, text: "练"}
            """),
        encoding="utf-8",
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
            timezone: Europe/London
            transport: {{kind: simulated}}
            quiet_hours: "off"
            pacing: {{ack_window_seconds: 30}}
            cohorts: [{{id: c, playbook: {playbook}, room: r, start: 2026-12-01}}]
            """),
        encoding="utf-8",
    )

    def roll_call(*extra: str | Path) -> str | None:
        result = invoke("simulate", playbook, scenario, *extra)
        assert result.exit_code == 0, result.output
        sends = [json.loads(line) for line in result.stdout.splitlines()]
        return next((s["at"] for s in sends if "小明" in s["text"] and s["chat"] == "room"), None)

    # Default: quiet from 22:30, so the 23:00 check-in is not named that night.
    assert not (roll_call() or "").startswith("2026-12-02T23")
    # The config's: no quiet hours, London time, a 30-second fold window.
    assert (roll_call("--config", config) or "").startswith("2026-12-02T23:00:3")

    broken = tmp_path / "broken.yaml"
    broken.write_text("transport: {kind: pigeon}\ncohorts: []\n", encoding="utf-8")
    result = invoke("simulate", playbook, scenario, "--config", broken)
    assert result.exit_code == 2 and f"{broken}:1" in result.stderr


def test_wrapping_keeps_names_and_words_whole():
    text = (
        "@王小明 @李华 @Kevin 📚 今天的正课已有 30/60 位同学完成！还没学完的同学抓紧哦，"
        "看 https://example.com/course/lesson-1 吧"
    )
    for width in range(12, 60):
        offsets = wrap_offsets(text, width)
        pieces = [text[a:b] for a, b in zip([0, *offsets], [*offsets, len(text)], strict=True)]
        assert "".join(pieces) == text
        for p in pieces:
            assert cell_len(p.rstrip()) <= width, (width, p)
            assert not p.startswith(("，", "！")), (width, p)
        if width >= 20:
            assert all(n in {w for p in pieces for w in p.split()} for n in ("@王小明", "@李华", "@Kevin"))


# ---------------------------------------------------------------- preview, today


def test_preview_fits_80_columns_one_line_an_item():
    pb = playbooks.load(SAMPLE)
    result = invoke("preview", SAMPLE, "--start", "2026-12-01")
    assert result.exit_code == 0, result.output
    assert_fits(result.stdout)
    for item_id in pb.item_ids:
        assert sum(1 for line in result.stdout.splitlines() if line.rstrip().endswith(" " + item_id)) == 1


def test_preview_fills_total(odd, tmp_path):
    pb = tmp_path / "pb.yaml"
    pb.write_text(WITH_TOTAL, encoding="utf-8")
    shown = invoke("preview", pb, "--start", "2026-12-01")
    assert shown.exit_code == 0, shown.output
    assert "本群 N 位同学一起出发" in shown.stdout
    assert "N: the members in the group when the item is sent" in shown.stdout
    filled = invoke("preview", pb, "--start", "2026-12-01", "--members", 42)
    assert "本群 42 位同学一起出发" in filled.stdout


def test_today_command_fills_total(tmp_path):
    playbook = tmp_path / "pb.yaml"
    playbook.write_text(WITH_TOTAL, encoding="utf-8")
    sc = Scenario.model_validate(
        {
            "start": "2026-12-01",
            "members": [{"id": "u01", "name": "小明"}, {"id": "u02", "name": "小红"}],
            "events": [{"at": "day 1 09:00", "from": "u01", "text": "今日安排"}],
        }
    )
    result = simulate(playbooks.load(playbook), sc)
    answer = next(s for s in result.sent if s.chat == "dm:u01")
    assert "20:00 本群 2 位同学一起出发" in answer.text


# ---------------------------------------------------------------- config.example.yaml


def _clean_env(**extra: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "COLUMNS": "80", **extra}


def test_config_example_validates_in_a_clean_environment():
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "validate", "--strict", "config.example.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stderr
    assert "ok config.example.yaml (config)" in result.stdout


def test_config_example_wechaty_form_as_its_comments_say(tmp_path):
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    assert "  kind: simulated" in text
    text = text.replace("  kind: simulated", "  kind: wechaty")
    text = text.replace("  # endpoint:", "  endpoint:").replace("  # token:", "  token:")
    text = text.replace("playbooks/python-8day.yaml", str(SAMPLE))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text, encoding="utf-8")
    args = [sys.executable, "-m", "bot.cli", "validate", str(cfg)]
    unset = subprocess.run(args, capture_output=True, text=True, timeout=60, env=_clean_env())
    assert unset.returncode == 2
    assert "WECHATY_PUPPET_SERVICE_TOKEN is not set" in unset.stderr
    env = _clean_env(WECHATY_PUPPET_SERVICE_TOKEN="insecure_s3cret")
    ok = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
    assert ok.returncode == 0, ok.stderr


def test_config_example_shows_every_option():
    from bot.config import Config, PacingConfig, TransportConfig

    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    for model in (Config, PacingConfig, TransportConfig):
        for name in model.model_fields:
            line = next(
                (line for line in text.splitlines() if line.lstrip("# ").startswith(name + ":")), None
            )
            assert line is not None, name
            assert "#" in line.split(":", 1)[1] or name in ("cohorts", "pacing", "transport"), name


def test_the_sample_scenario_rehearses_operator_commands():
    result = invoke("simulate", SAMPLE, SCENARIO)
    assert result.exit_code == 0, result.output
    sent = [json.loads(line) for line in result.stdout.splitlines()]
    to_op = [s["text"] for s in sent if s["chat"] == "dm:op1"]
    assert any(t.startswith("【simulated】第 3 天，正课：") and "Lily" in t for t in to_op), to_op
    assert "✅ 【simulated】已为 Lily 补卡：晨读，第 3 天（由你补记）。" in to_op
    assert any("Lily（补卡）" in s["text"] for s in sent if s["chat"] == "room")


def test_the_demo_transcript_folds_private_messages_that_differ_only_by_name(tmp_path):
    """60 first questions of the questionnaire are one message and a list of names, not a wall."""
    result = invoke("demo", "--members", "20")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.count("（1/2）你现在的编程基础？") < 10  # 20 members, 2 joiners, reminders
    assert "… the same private message also went to" in text  # the operator's language
    zh = invoke("--lang", "zh", "demo", "--members", "20").stdout
    assert "… 同样的私信也发给了" in zh and "周二" in zh and "→ 私聊" in zh and "Tue" not in zh
