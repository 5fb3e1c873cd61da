"""The `cohortbot` command: validate, schema, preview, simulate, demo, run."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import playbook
from bot.cli import app
from tests.harness import EXAMPLE, SAMPLE
from tests.test_config import CONFIG
from tests.test_scenario import SCENARIO

ENV = {"COLUMNS": "200", "WECHATY_PUPPET_SERVICE_TOKEN": "s3cret"}
COHORTBOT = Path(sys.executable).parent / "cohortbot"

BROKEN = EXAMPLE.replace('at: "21:30"', 'at: "9:30pm"')
BROKEN_LINE = next(i + 1 for i, line in enumerate(BROKEN.splitlines()) if "9:30pm" in line)


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "playbooks").mkdir()
    paths = {
        "playbook": tmp_path / "playbooks" / "python-8day.yaml",
        "broken": tmp_path / "broken.yaml",
        "scenario": tmp_path / "scenario.yaml",
        "config": tmp_path / "config.yaml",
    }
    paths["playbook"].write_text(EXAMPLE, encoding="utf-8")
    paths["broken"].write_text(BROKEN, encoding="utf-8")
    paths["scenario"].write_text(SCENARIO, encoding="utf-8")
    paths["config"].write_text(CONFIG, encoding="utf-8")
    return paths


def assert_clean_failure(result, where: str) -> None:
    """Exit 2 through typer.Exit (not a crash), the problem's file:line shown, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert f"{where}:" in result.stderr
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- validate


def test_validate_valid_playbooks(files):
    result = invoke("validate", files["playbook"], SAMPLE)
    assert result.exit_code == 0, result.output
    assert f"ok {files['playbook']}" in result.stdout
    assert f"ok {SAMPLE}" in result.stdout
    assert "Python 入门体验营" in result.stdout
    # The format's example sets `ack` and `announce` on tracks that roll calls name: legal,
    # but never used, so warned about; the sample playbook draws no warning.
    assert result.stderr.count("warning") == 2
    assert str(SAMPLE) not in result.stderr


def test_validate_invalid_playbook(files):
    result = invoke("validate", files["broken"])
    assert_clean_failure(result, f"{files['broken']}:{BROKEN_LINE}")
    assert "schedule[2].at" in result.stderr
    assert '"HH:MM"' in result.stderr


def test_validate_reports_each_file_and_fails_if_any_is_bad(files):
    result = invoke("validate", files["playbook"], files["broken"])
    assert_clean_failure(result, f"{files['broken']}:{BROKEN_LINE}")
    assert f"ok {files['playbook']}" in result.stdout


def test_validate_missing_file(tmp_path: Path):
    result = invoke("validate", tmp_path / "nope.yaml")
    assert_clean_failure(result, f"{tmp_path / 'nope.yaml'}:1")
    assert "no such file" in result.stderr


def test_validate_accepts_a_config_and_a_scenario(files):
    result = invoke("validate", files["config"], files["scenario"])
    assert result.exit_code == 0, result.output
    assert f"ok {files['config']} (config)" in result.stdout
    assert f"ok {files['scenario']} (scenario)" in result.stdout


def test_validate_broken_config_and_scenario(files):
    files["config"].write_text(CONFIG.replace("bot_name:", "bot_nam:"), encoding="utf-8")
    files["scenario"].write_text(SCENARIO.replace("dm: true", "dn: true"), encoding="utf-8")
    result = invoke("validate", files["config"], files["scenario"])
    assert_clean_failure(result, f"{files['config']}:4")
    assert f"{files['scenario']}:14:" in result.stderr


def test_validate_through_the_installed_command(files):
    if not COHORTBOT.exists():
        pytest.skip("cohortbot script not installed next to this Python")
    proc = subprocess.run(
        [str(COHORTBOT), "validate", str(files["broken"])], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert f"{files['broken']}:{BROKEN_LINE}:" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# ---------------------------------------------------------------- schema


def test_schema_prints_the_json_schema():
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema == json.loads(json.dumps(playbook.json_schema()))
    assert {"name", "days", "tracks", "schedule"} <= set(schema["properties"])


# ---------------------------------------------------------------- preview


def test_preview_lists_every_item_with_local_times(files):
    result = invoke("preview", files["playbook"], "--start", "2026-12-01")
    assert result.exit_code == 0, result.output
    # A heading row for each day with its date, then one row per item: time, what, id.
    lines = result.stdout.splitlines()
    days = [line.split() for line in lines if line.strip().startswith("day ")]
    assert [d[:2] for d in days] == [["day", str(n)] for n in (1, 2, 3, 5)]
    assert [d[3] for d in days] == ["2026-12-01", "2026-12-02", "2026-12-03", "2026-12-05"]
    rows = [line.split() for line in lines if line.strip()[:2].isdigit() and ":" in line[:9]]
    expected = [
        ("19:30", "d1-1930-post"),
        ("07:30", "d2-0730-post"),
        ("21:30", "d2-2130-remind-lesson"),
        ("09:00", "d3-0900-nudge-lesson"),
        ("22:00", "d5-2200-leaderboard-reading"),
    ]
    assert [(r[0], r[-1]) for r in rows] == expected


def test_preview_uses_the_playbooks_zone_for_local_times(files):
    files["playbook"].write_text(EXAMPLE.replace("Asia/Shanghai", "Europe/London"), encoding="utf-8")
    result = invoke("preview", files["playbook"], "--start", "2026-12-01")
    assert result.exit_code == 0, result.output
    assert "Europe/London" in result.stdout
    assert "19:30" in result.stdout and "22:00" in result.stdout


@pytest.mark.parametrize("start", ["2026-13-01", "12/01/2026", "tomorrow", ""])
def test_preview_bad_start(files, start):
    result = invoke("preview", files["playbook"], "--start", start)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "YYYY-MM-DD" in result.stderr
    assert "Traceback" not in result.output


def test_preview_broken_playbook(files):
    result = invoke("preview", files["broken"], "--start", "2026-12-01")
    assert_clean_failure(result, f"{files['broken']}:{BROKEN_LINE}")


# ---------------------------------------------------------------- simulate


def parse_lines(text: str) -> list[dict]:
    lines = text.splitlines()
    assert lines, "no output"
    return [json.loads(line) for line in lines]


def test_simulate_prints_json_lines(files):
    result = invoke("simulate", files["playbook"], files["scenario"])
    assert result.exit_code == 0, result.output
    sends = parse_lines(result.stdout)
    members = {"op1", "u01", "u02", "u09"}
    for s in sends:
        assert set(s) == {"at", "chat", "text", "mentions"}
        assert s["at"].endswith("+08:00")
        assert s["chat"] == "room" or (s["chat"].startswith("dm:") and s["chat"][3:] in members), s
        assert isinstance(s["text"], str) and s["text"]
        assert isinstance(s["mentions"], list) and set(s["mentions"]) <= members
    times = [datetime.fromisoformat(s["at"]) for s in sends]
    assert times == sorted(times)
    assert all(datetime(2026, 12, 1).date() <= t.date() <= datetime(2026, 12, 8).date() for t in times)
    # The items of the playbook are in it, at their minutes:
    assert sends[0] == {
        "at": "2026-12-01T19:30:00+08:00",
        "chat": "room",
        "text": "【开营仪式】欢迎来到Python 入门体验营！",
        "mentions": [],
    }
    remind = next(s for s in sends if s["text"].startswith("今天的课还没完成"))
    assert remind["at"] == "2026-12-02T21:30:00+08:00"
    assert remind["mentions"] == ["u01"]  # u02 checked in; op1 is an operator
    assert any(s["chat"] == "dm:u01" and s["at"].startswith("2026-12-03T09:00") for s in sends)
    assert any(s["chat"] == "dm:u01" and s["at"].startswith("2026-12-04T12:05") for s in sends)


def test_simulate_out_writes_the_file(files, tmp_path: Path):
    to_stdout = invoke("simulate", files["playbook"], files["scenario"])
    out = tmp_path / "sent.jsonl"
    result = invoke("simulate", files["playbook"], files["scenario"], "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    written = out.read_text(encoding="utf-8")
    assert written == to_stdout.stdout
    assert len(parse_lines(written)) >= 5


def test_simulate_refuses_an_out_or_a_db_it_cannot_use_before_it_plays(files, tmp_path: Path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("notes, not a database\n" * 10)  # (SQLite takes a file of a byte or two for empty)
    for option, value, says in [
        ("--out", tmp_path, "is a folder; name a file"),
        ("--out", blocker / "sent.jsonl", f"{blocker} is a file, not a folder"),
        ("--db", "not-a-url", "cannot open the database not-a-url"),
        ("--db", f"sqlite:///{blocker}", "file is not a database"),
    ]:
        result = invoke("simulate", files["playbook"], files["scenario"], option, value)
        assert result.exit_code == 2, (option, value, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        assert says in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stdout == ""  # refused before the rehearsal, not after it


def test_demo_web_on_a_port_past_65535():
    result = invoke("demo", "--members", "3", "--web", "127.0.0.1:99999")
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "cannot listen on 127.0.0.1:99999" in result.stderr


def test_files_of_the_wrong_kind_are_said_as_such(files):
    # Swapped or mistaken files: one line each, not a list of every key as "unknown".
    pb, sc, cfg = files["playbook"], files["scenario"], files["config"]
    for args, said in [
        (
            ["simulate", sc, pb],
            [f"{sc}:1: this is a scenario, not a playbook", f"{pb}:1: this is a playbook, not a"],
        ),
        (["run", "--config", pb], [f"{pb}:1: this is a playbook, not a config; check which file goes where"]),
        (["preview", cfg, "--start", "2026-12-01"], [f"{cfg}:1: this is a config, not a playbook"]),
        (["--lang", "zh", "report", "--config", sc], [f"{sc}:1: 这是彩排场景文件，不是部署配置文件"]),
    ]:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        lines = result.stderr.splitlines()
        assert len(lines) == len(said), result.stderr
        assert all(line.split(" ", 1)[1].startswith(s) for line, s in zip(lines, said, strict=True)), lines


def test_simulate_broken_scenario(files):
    files["scenario"].write_text(SCENARIO.replace("from: u02", "from: u77"), encoding="utf-8")
    result = invoke("simulate", files["playbook"], files["scenario"])
    assert_clean_failure(result, f"{files['scenario']}:11")
    assert "u77" in result.stderr
    assert result.stdout == ""


def test_simulate_broken_playbook(files):
    result = invoke("simulate", files["broken"], files["scenario"])
    assert_clean_failure(result, f"{files['broken']}:{BROKEN_LINE}")


def test_simulate_scenario_with_impossible_date(files):
    files["scenario"].write_text(SCENARIO.replace("start: 2026-12-01", "start: 2026-02-30"), encoding="utf-8")
    result = invoke("simulate", files["playbook"], files["scenario"])
    assert_clean_failure(result, f"{files['scenario']}:1")


# ---------------------------------------------------------------- demo and run


def test_demo_quiet():
    result = invoke("demo", "--quiet", "--members", "10")
    assert result.exit_code == 0, result.output
    for title in ("Check-ins per day and track", "Rewards granted", "How much the bot said, per day"):
        assert title in result.stdout
    assert "Per 100 counted check-ins:" in result.stdout  # the group's noise, in one line
    assert "10 members" in result.stdout
    assert "played 8 days" in result.stdout


@pytest.mark.parametrize(
    ("lang", "says"),
    [
        ("en", "no logged-in account at the gateway 127.0.0.1:9"),
        ("zh", "网关 127.0.0.1:9 上没有已登录的微信号"),
    ],
)
def test_run_with_an_unreachable_gateway_exits_cleanly(files, lang: str, says: str):
    # Nothing listens on the config's endpoint: a clear message, exit 2, no traceback.
    cfg = CONFIG.replace("  token:", "  connect_timeout_seconds: 1\n  token:").replace(
        "127.0.0.1:8788", "127.0.0.1:9"
    )
    files["config"].write_text(cfg, encoding="utf-8")
    result = invoke("--lang", lang, "run", "--config", files["config"])
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert says in result.stderr
    assert "Traceback" not in result.output


def test_run_with_a_broken_config(files):
    files["config"].write_text(CONFIG.replace("id: py-2026-12-a", "id: Py 2026"), encoding="utf-8")
    result = invoke("run", "--config", files["config"])
    assert_clean_failure(result, f"{files['config']}:18")
