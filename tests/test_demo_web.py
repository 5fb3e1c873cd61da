"""`cohortbot demo --web` as an operator starts it: a process that serves the console over the
demo cohort on its fast clock, prints the address and a login, and ends cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from bot.cli import _web_alone
from bot.demo import DEFAULT_BIND

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_web_alone_gets_the_default_address() -> None:
    assert _web_alone(["demo", "--web"]) == ["demo", "--web", DEFAULT_BIND]
    assert _web_alone(["demo", "--web", "--seed", "5"]) == ["demo", "--web", DEFAULT_BIND, "--seed", "5"]
    assert _web_alone(["demo", "--web", "pb.yaml"]) == ["demo", "--web", DEFAULT_BIND, "pb.yaml"]
    assert _web_alone(["demo", "--web", "0.0.0.0:9000"]) == ["demo", "--web", "0.0.0.0:9000"]
    assert _web_alone(["demo", "--web", "[::1]:9000"]) == ["demo", "--web", "[::1]:9000"]
    assert _web_alone(["demo"]) == ["demo"]


def test_demo_web_serves_the_console_until_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", "LANG": "C.UTF-8"}
    command = [sys.executable, "-m", "bot.cli", "--lang", "en", "demo", "--members", "6"]
    command += ["--web", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        seen = ""
        assert proc.stdout is not None
        while "Ctrl-C" not in seen:
            line = proc.stdout.readline()
            assert line, f"ended early: {seen}{proc.stderr.read() if proc.stderr else ''}"
            seen += line
        assert f"http://127.0.0.1:{port}/" in seen
        found = re.search(r"login: (\S+)\s+password: (\S+)", seen)
        assert found and found[1] == "demo", seen
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as c:
            form = c.get("/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert csrf
            wrong = c.post("/login", data={"csrf": csrf[1], "name": "demo", "password": "not it"})
            assert wrong.status_code == 401
            ok = c.post("/login", data={"csrf": csrf[1], "name": "demo", "password": found[2]})
            assert ok.status_code == 303
            overview = c.get("/")
            assert overview.status_code == 200 and "Python 入门体验营" in overview.text
            assert "/cohort/simulated" in overview.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_demo_web_refuses_a_bad_address_or_speed_in_one_line() -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["demo", "--members", "3", "--web", "localhost:http"])
    assert r.exit_code == 2 and "write HOST:PORT" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["demo", "--members", "3", "--web", DEFAULT_BIND, "--speed", "0"])
    assert r.exit_code == 2 and "--speed 0" in r.output


def test_demo_web_on_a_taken_port_says_so_and_exits_1() -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = CliRunner().invoke(app, ["demo", "--members", "3", "--web", f"127.0.0.1:{port}"])
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output, r.output
