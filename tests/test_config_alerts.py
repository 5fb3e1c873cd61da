"""The config's `alerts:` section (bot/config.py): channels built from it, every mistake
with its file and line, secrets never printed."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from bot import config, notify
from bot.yamlfile import InputError
from tests.harness import EXAMPLE

BASE = """\
database: sqlite:///bot.db
transport: {kind: simulated}
cohorts:
  - {id: c1, playbook: pb.yaml, room: 1班, start: 2026-12-01}
"""
FULL = """\
alerts:
  wecom: {webhook: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=${WECOM_KEY}"}
  webhook:
    url: https://ops.example.com/hooks/cohortbot
    headers: {Authorization: "Bearer ${HOOK_TOKEN}"}
  email:
    host: smtp.example.com
    security: ssl
    user: bot@example.com
    password: ${SMTP_PASSWORD}
    from: CohortBot <bot@example.com>
    to: [ops@example.com, lead@example.com]
  gateway_down_minutes: 3
  failing_sends: 5
  language: en
"""
ENV = {"WECOM_KEY": "wecom-key-123", "HOOK_TOKEN": "hook-token-456", "SMTP_PASSWORD": "smtp-pw-789"}


def load(tmp_path: Path, alerts: str, env: dict[str, str] | None = None) -> config.Loaded:
    (tmp_path / "pb.yaml").write_text(EXAMPLE, encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(BASE + alerts, encoding="utf-8")
    return config.load(path, env=ENV if env is None else env)


def problems(tmp_path: Path, alerts: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        load(tmp_path, alerts)
    return [str(p) for p in caught.value.problems]


def test_every_channel_is_built_from_the_section(tmp_path):
    settings = load(tmp_path, FULL).alert_settings()
    wecom, webhook, email = settings.channels
    assert isinstance(wecom, notify.WeComRobot)
    assert wecom.url == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=wecom-key-123"
    assert isinstance(webhook, notify.JsonWebhook)
    assert webhook.headers == {"Authorization": "Bearer hook-token-456"}
    assert isinstance(email, notify.Email)
    assert (email.host, email.port, email.security, email.password) == (
        "smtp.example.com",
        465,
        "ssl",
        "smtp-pw-789",
    )
    assert email.to == ("ops@example.com", "lead@example.com")
    assert settings.gateway_down == timedelta(minutes=3)
    assert (settings.failing_sends, settings.language, settings.label) == (5, "en", "[cohortbot c1]")
    assert settings.cohorts == "c1"
    # Never in a repr (a log line or a traceback of the settings).
    assert not any(secret in repr(settings) for secret in ENV.values())


def test_no_section_no_channels_and_the_example_config_still_validates(tmp_path):
    assert load(tmp_path, "").alert_settings().channels == ()
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "validate", str(root / "config.example.yaml")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("alerts", "line", "expected"),
    [
        ("alerts: {}\n", 5, "no channel to send alerts to; add wecom, webhook or email"),
        ("alerts:\n  wecom: {webhook: qyapi.weixin.qq.com/send}\n", 6, "is not a web address"),
        ("alerts:\n  webhook: {url: https://x.example.com, header: {}}\n", 6, "header"),
        (
            "alerts:\n  email: {host: smtp.example.com, from: bot, to: [ops@example.com]}\n",
            6,
            "is not an e-mail",
        ),
        ("alerts:\n  email: {host: smtp.example.com, from: a@b.cn, to: []}\n", 6, "to"),
        (
            "alerts:\n  email: {host: smtp.example.com, from: a@b.cn, to: [c@d.cn], security: tls}\n",
            6,
            "starttls",
        ),
        (
            "alerts:\n  email: {host: smtp.example.com, from: a@b.cn, to: [c@d.cn], user: u}\n",
            6,
            "`password`",
        ),
        ("alerts:\n  wecom: {webhook: https://x.cn}\n  gateway_down_minutes: 0\n", 7, "out of range"),
        ("alerts:\n  wecom: {webhook: https://x.cn}\n  failing_sends: 2.5\n", 7, "not a whole number"),
    ],
)
def test_a_mistake_is_told_with_its_line(tmp_path, alerts, line, expected):
    [problem] = problems(tmp_path, alerts)
    assert problem.startswith(f"{tmp_path / 'config.yaml'}:{line}:"), problem
    assert expected in problem


def test_secrets_never_reach_an_error(tmp_path):
    found = problems(
        tmp_path,
        "alerts:\n"
        '  wecom: {webhook: "ftp://qyapi.weixin.qq.com/send?key=${WECOM_KEY}"}\n'
        "  webhook: {url: https://x.cn, headers: {Authorization: \"Bearer ${HOOK_TOKEN}\"}}\n"
        "  email: {host: smtp.example.com, password: \"${SMTP_PASSWORD}\",\n"
        "          from: a@b.cn, to: [c@d.cn], port: 0}\n",
    )
    text = "\n".join(found)
    assert "is not a web address" in text and "key=***" in text
    assert "out of range" in text
    assert not any(secret in text for secret in ENV.values())
