"""The settings of roll calls and quiet hours as an operator writes them: the config's
`quiet_hours` and `pacing.ack_every_minutes` / `roll_call_mentions`, the playbook's own
`ack_every_minutes`, and what `validate` warns about (legal, but almost surely not meant)."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import config
from bot.cli import app
from tests.harness import EXAMPLE, members

ENV = {"COLUMNS": "200"}
PEOPLE = members("u01:小明", "u02:小红", "u03:小刚", "u04:小美", "u05:小强")


def write_config(tmp_path: Path, extra: str, playbook: str = EXAMPLE) -> Path:
    (tmp_path / "pb.yaml").write_text(playbook, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(
        "transport: {kind: simulated}\n"
        + extra
        + "cohorts:\n  - {id: c1, playbook: pb.yaml, room: 训练营, start: 2026-12-01}\n",
        encoding="utf-8",
    )
    return path


def validate(*args: str | Path):
    return CliRunner().invoke(app, ["validate", *map(str, args)], env=ENV)


def test_quiet_hours_default_spelled_and_off(tmp_path):
    default = config.load(write_config(tmp_path, "")).settings().quiet_hours
    assert default is not None and (default.start, default.end) == (time(22, 30), time(7, 30))
    spelled = config.load(write_config(tmp_path, 'quiet_hours: "23:00-06:30"\n')).settings().quiet_hours
    assert spelled is not None and (spelled.start, spelled.end) == (time(23), time(6, 30))
    assert config.load(write_config(tmp_path, "quiet_hours: off\n")).settings().quiet_hours is None


@pytest.mark.parametrize("bad", ['"25:00-07:00"', '"22:30"', "yes please", '"7:30-7:30"'])
def test_a_quiet_hours_that_is_not_a_span_names_its_line(tmp_path, bad):
    result = validate(write_config(tmp_path, f"quiet_hours: {bad}\n"))
    assert result.exit_code == 2
    assert "config.yaml:2: quiet_hours:" in result.output and '"22:30-07:30"' in result.output


def test_the_roll_call_pacing_from_the_config(tmp_path):
    loaded = config.load(
        write_config(tmp_path, "pacing: {ack_every_minutes: 45, roll_call_mentions: true}\n")
    )
    pacing = loaded.settings().pacing
    assert (pacing.ack_every_minutes, pacing.roll_call_mentions) == (45, True)
    assert validate(write_config(tmp_path, "pacing: {ack_every_minutes: 0}\n")).exit_code == 2


def test_validate_warns_about_ack_on_a_roll_call_track_and_strict_refuses(tmp_path):
    path = tmp_path / "pb.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")  # the format's example sets `ack` on lesson
    line = next(i + 1 for i, t in enumerate(EXAMPLE.splitlines()) if t.strip().startswith("ack:"))
    result = validate(path)
    assert result.exit_code == 0
    assert (
        f"warning {path}:{line}: tracks.lesson.ack: `ack` is used only with `acknowledge: each`"
        in result.output
    )
    assert validate("--strict", path).exit_code == 2
    each = EXAMPLE.replace("    ack:", "    acknowledge: each\n    ack:").replace(
        "    announce:", "    # announce:"
    )
    path.write_text(each, encoding="utf-8")
    quiet = validate("--strict", path)
    assert quiet.exit_code == 0, quiet.output
    assert "warning" not in quiet.output


def test_validate_warns_about_items_inside_the_configs_quiet_hours(tmp_path):
    late = EXAMPLE.replace('at: "22:00"', 'at: "23:15"')
    line = next(i + 1 for i, t in enumerate(late.splitlines()) if "23:15" in t)
    result = validate(write_config(tmp_path, 'quiet_hours: "23:00-07:00"\n', late))
    assert result.exit_code == 0
    assert f"pb.yaml:{line}: schedule: 23:15 is inside the quiet hours (23:00-07:00)" in result.output
    assert "pb.yaml" in result.output
    off = validate(write_config(tmp_path, "quiet_hours: off\n", late))
    assert "inside the quiet hours" not in off.output


async def test_the_playbooks_own_interval_wins(harness):
    h = await harness(
        EXAMPLE.replace("schedule:", "ack_every_minutes: 60\nschedule:"), people=PEOPLE, now="day 2 07:45"
    )
    assert h.bot.engine.rollcalls.every(h.run) == timedelta(minutes=60)
    for i, who in enumerate(("u01", "u02", "u03", "u04", "u05")):
        await h.until(f"day 2 08:0{i}")
        await h.say(who, "打卡")
    await h.until("day 2 10:00")
    await h.settle()
    calls = [h.local(s) for s in h.room() if "rollcall" in s.kinds]
    assert calls == ["02 08:00:03", "02 09:00:03"]


def test_how_long_a_name_waits_can_be_set(tmp_path):
    loaded = config.load(write_config(tmp_path, "pacing: {ack_every_minutes: 1, ack_max_wait_minutes: 2}\n"))
    pacing = loaded.settings().pacing
    assert (pacing.ack_every_minutes, pacing.ack_max_wait_minutes) == (1, 2)
    assert validate(write_config(tmp_path, "pacing: {ack_max_wait_minutes: .inf}\n")).exit_code == 2


async def test_a_set_wait_names_a_lone_check_in_soon(harness):
    from bot.outbox import Pacing

    h = await harness(
        people=PEOPLE, now="day 2 07:45", pacing=Pacing(ack_every_minutes=1, ack_max_wait_minutes=2)
    )
    await h.until("day 2 08:00")
    await h.say("u01", "打卡")
    await h.until("day 2 08:10")
    await h.say("u02", "打卡")
    await h.until("day 2 09:00")
    await h.settle()
    assert [h.local(s) for s in h.room() if "rollcall" in s.kinds] == ["02 08:00:03", "02 08:12:00"]


@pytest.mark.parametrize("bad", ['"4点"', '"25:00"', "[4]"])
def test_a_day_starts_that_is_not_a_time_names_its_line(tmp_path, bad):
    path = tmp_path / "pb.yaml"
    path.write_text(EXAMPLE.replace("schedule:", f"day_starts: {bad}\nschedule:"), encoding="utf-8")
    line = next(
        i + 1 for i, t in enumerate(path.read_text(encoding="utf-8").splitlines()) if "day_starts" in t
    )
    result = validate(path)
    assert result.exit_code == 2
    assert f"pb.yaml:{line}: day_starts:" in result.output and '"HH:MM"' in result.output
