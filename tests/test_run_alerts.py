"""`cohortbot run` telling the operators outside WeChat about its own life, on the real
clock, as a process: a start that fails is one alert however often a supervisor retries it;
the next good start says the bot runs again; a run killed outright is reported at the next
start."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.alert_servers import HookServer, hook_server
from tests.harness import SAMPLE

pytestmark = pytest.mark.realtime

CONFIG = """\
timezone: Asia/Shanghai
database: sqlite:///bot.db
operators: [op1]
language: en
transport:
  {transport}
alerts:
  webhook: {{url: "{url}", headers: {{Authorization: "Bearer ${{HOOK_TOKEN}}"}}}}
cohorts:
  - {{id: py-test, playbook: {playbook}, room: Python 8天训练营 1班, start: 2026-12-01}}
"""
SIMULATED = "kind: simulated"
UNREACHABLE = "{kind: wechaty, endpoint: 127.0.0.1:9, token: x, connect_timeout_seconds: 0.5}"
ENV = {"PATH": "/usr/bin:/bin", "TZ": "Asia/Shanghai", "HOOK_TOKEN": "hook-secret-1", "COLUMNS": "200"}


def write(tmp_path: Path, hook: HookServer, transport: str) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(transport=transport, url=hook.url(), playbook=SAMPLE), encoding="utf-8")
    return cfg


def run(cfg: Path, lines: str = "quit\n") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
    )


def said(hook: HookServer) -> list[tuple[str, str]]:
    return [(p.body["event"], p.body["state"]) for p in hook.posts]


def test_a_failed_start_is_one_alert_and_the_next_good_start_resolves_it(tmp_path):
    with hook_server() as hook:
        cfg = write(tmp_path, hook, UNREACHABLE)
        first = run(cfg)
        assert first.returncode == 2
        assert "Traceback" not in first.stderr
        assert said(hook) == [("stopped", "open")]
        alert = hook.posts[0]
        assert alert.body["text"].startswith(
            "🛑 [cohortbot py-test] The bot could not start: no logged-in account"
        )
        assert alert.body["cohort"] == "py-test"
        assert alert.headers["Authorization"] == "Bearer hook-secret-1"
        # A supervisor starting it again and again: no storm.
        assert run(cfg).returncode == 2
        assert said(hook) == [("stopped", "open")]
        cfg = write(tmp_path, hook, SIMULATED)
        good = run(cfg)
        assert good.returncode == 0, good.stderr
        assert said(hook) == [("stopped", "open"), ("stopped", "resolved")]
        assert "The bot is running again (it had stopped at" in hook.posts[1].body["text"]
        # Stopped cleanly: nothing left to say at the next start.
        assert not (tmp_path / "bot.db.state").exists()
        assert "hook-secret-1" not in good.stderr + good.stdout


def test_a_run_killed_outright_is_reported_at_the_next_start(tmp_path):
    with hook_server() as hook:
        cfg = write(tmp_path, hook, SIMULATED)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # until it runs
                if "watching" in line:
                    break
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(10)
        assert (tmp_path / "bot.db.state").exists()
        time.sleep(0.1)
        again = run(cfg)
        assert again.returncode == 0, again.stderr
        assert "the last run did not stop cleanly" in again.stderr
        assert said(hook) == [("stopped", "resolved")]
        assert "did not stop cleanly last time (last sign of life" in hook.posts[0].body["text"]
        assert not (tmp_path / "bot.db.state").exists()  # this one stopped cleanly
