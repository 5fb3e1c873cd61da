"""`cohortbot run` with `transport.kind: simulated`: the operator types as members in the
terminal and sees the bot answer, on the real clock, with the database kept across runs."""

import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.harness import SAMPLE

CONFIG = """\
timezone: Asia/Shanghai
database: sqlite:///bot.db
operators: [op1]
bot_name: CohortBot
transport:
  kind: simulated
cohorts:
  - id: py-test
    playbook: {playbook}
    room: Python 8天训练营 1班
    start: {start}
"""


def run(tmp_path: Path, lines: str) -> subprocess.CompletedProcess[str]:
    # Start yesterday in China, so today is lesson day 2 there (the sample's days start at
    # 04:00: before that it is still yesterday's day).
    start = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(hours=4)).date() - timedelta(days=1)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG.format(playbook=SAMPLE, start=start), encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        input=lines,
        capture_output=True,
        text=True,
        timeout=60,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "TZ": "Asia/Shanghai"},
    )


def test_terminal_group_answers_and_counts(tmp_path):
    result = run(tmp_path, "join u01 小明\nu01: 帮助\nu01: 打卡\ndm u01: 进度\nquit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Type as a member of the group" in out
    # Asked in the group, answered privately.
    assert re.search(r"CohortBot → private u01: +🤖 我是Python 入门体验营的助教机器人", out), out
    # The check-in counted (no reply of its own: a roll call names it a little later).
    assert "打卡成功" not in out
    assert re.search(r"CohortBot → private u01: +📋 小明 的学习进度", out), out
    assert "· 正课：1/4 天（第2天），今天已打卡 ✅" in out
    assert "Traceback" not in result.stderr
    assert (tmp_path / "bot.db").exists()  # relative to the config file


def test_unreachable_gateway_is_refused_cleanly(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        CONFIG.format(playbook=SAMPLE, start="2026-12-01").replace(
            "kind: simulated",
            "kind: wechaty\n  endpoint: 127.0.0.1:9\n  token: x\n  connect_timeout_seconds: 2",
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "no logged-in account at the gateway" in result.stderr
    assert "Traceback" not in result.stderr


def test_terminal_op_types_as_the_operator(tmp_path):
    result = run(tmp_path, "join u01 小明\nop: 未打卡\nop: 暂停\nquit\n")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"CohortBot → private op1: +【py-test】第 2 天，正课：1 人里还有 1 人没打卡", out), out
    assert "⏸ 【py-test】已暂停" in out
    assert "Traceback" not in result.stderr
