"""Alerts outside WeChat (bot/notify.py, bot/incidents.py). The channels against a local
HTTP server and a local SMTP server (aiosmtpd), on the real clock; the incidents through
the whole bot on virtual time: one alert when an incident opens and one when it is resolved
(flapping included), and channels that hang or fail never delay the group's messages."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from bot import i18n
from bot.incidents import AlertSettings
from bot.notify import Alert, Delivery, DeliveryError, Email, JsonWebhook, Notifier, WeComRobot
from bot.transports.base import Disconnected, LoggedOut, LoginNeeded, Reconnected, SendError
from tests.alert_servers import hook_server, mail_server
from tests.harness import Harness

AT = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)
ALERT = Alert("logged_out", "open", "⚠️ [cohortbot c1] The account is logged out", AT, "c1", "logged_out@1")
LOCAL_AUTH = "ignore:Requiring AUTH while not requiring TLS"  # aiosmtpd's, for a local test server
QUICK = Delivery(timeout=1, attempts=3, pause=0.05)

# --- the channels, against local servers ------------------------------------------------------


@pytest.mark.realtime
async def test_the_wecom_robot_gets_a_text_message():
    with hook_server() as wecom:
        notifier = Notifier([WeComRobot(wecom.url("/cgi-bin/webhook/send?key=robot-key-1"))], QUICK)
        notifier.send(ALERT)
        await notifier.drain(5)
    [post] = wecom.posts
    assert post.path == "/cgi-bin/webhook/send?key=robot-key-1"
    assert post.body == {"msgtype": "text", "text": {"content": ALERT.text}}
    assert post.headers["Content-Type"].startswith("application/json")
    assert [name for name, _ in notifier.delivered] == ["WeCom robot"]


@pytest.mark.realtime
async def test_a_wecom_errcode_is_a_failure_retried_then_logged_once_without_the_key(caplog):
    with hook_server("errcode") as wecom:
        notifier = Notifier([WeComRobot(wecom.url("/send?key=robot-key-1"))], QUICK)
        notifier.send(ALERT)
        notifier.send(Alert("logged_out", "resolved", "✅ back", AT, "c1", "logged_out@1"))
        await notifier.drain(5)
    assert len(wecom.posts) == 6  # three tries for each alert
    assert notifier.delivered == []
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors  # once per incident and channel
    assert "errcode 93000" in errors[0] and "WeCom robot" in errors[0]
    assert "robot-key-1" not in caplog.text


@pytest.mark.realtime
async def test_the_json_webhook_gets_event_state_cohort_text_and_time_with_its_headers():
    with hook_server() as hook:
        notifier = Notifier([JsonWebhook(hook.url(), {"Authorization": "Bearer t0ken"})], QUICK)
        notifier.send(ALERT)
        await notifier.drain(5)
    [post] = hook.posts
    assert post.body == {
        "event": "logged_out",
        "state": "open",
        "cohort": "c1",
        "text": ALERT.text,
        "at": "2026-12-02T01:30:00+00:00",
    }
    assert post.headers["Authorization"] == "Bearer t0ken"


@pytest.mark.realtime
@pytest.mark.filterwarnings(LOCAL_AUTH)
async def test_an_email_goes_through_a_local_smtp_server_with_a_login():
    with mail_server(user="bot", password="pw-123") as smtp:
        email = Email(
            "127.0.0.1",
            smtp.port,
            "none",
            "CohortBot <bot@example.com>",
            ("ops@example.com",),
            "bot",
            "pw-123",
        )
        notifier = Notifier([email], QUICK)
        notifier.send(ALERT)
        await notifier.drain(10)
        [mail] = smtp.wait(1)
    assert mail["Subject"] == ALERT.text
    assert mail["From"] == "CohortBot <bot@example.com>"
    assert mail["To"] == "ops@example.com"
    assert mail["X-Cohortbot-Event"] == "logged_out open"
    assert mail.get_content().strip() == ALERT.text
    assert smtp.envelopes == [("bot@example.com", ["ops@example.com"])]


@pytest.mark.realtime
@pytest.mark.filterwarnings(LOCAL_AUTH)
async def test_a_wrong_smtp_password_is_a_failure_that_never_prints_it(caplog):
    with mail_server(user="bot", password="right-pw") as smtp:
        email = Email(
            "127.0.0.1", smtp.port, "none", "bot@example.com", ("ops@example.com",), "bot", "wrong-pw"
        )
        notifier = Notifier([email], Delivery(timeout=2, attempts=1))
        notifier.send(ALERT)
        await notifier.drain(10)
    assert smtp.mails == [] and notifier.delivered == []
    assert "SMTPAuthenticationError" in caplog.text
    assert "wrong-pw" not in caplog.text


@pytest.mark.realtime
async def test_a_hanging_webhook_and_one_answering_500_never_hold_up_the_loop(caplog):
    loop = asyncio.get_running_loop()
    with hook_server("hang") as hanging, hook_server("500") as failing, hook_server() as good:
        notifier = Notifier(
            [JsonWebhook(hanging.url()), JsonWebhook(failing.url()), JsonWebhook(good.url())],
            Delivery(timeout=0.3, attempts=2, pause=0.1),
        )
        started = loop.time()
        notifier.send(ALERT)  # returns at once
        assert loop.time() - started < 0.05
        # The loop keeps running on time while the alerts are tried and retried.
        gaps = []
        last = loop.time()
        for _ in range(20):
            await asyncio.sleep(0.05)
            gaps.append(loop.time() - last)
            last = loop.time()
        await notifier.drain(5)
    assert max(gaps) < 0.1
    assert len(hanging.posts) == 2 and len(failing.posts) == 2 and len(good.posts) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert any("no answer in 0.3 s" in e for e in errors)
    assert any("HTTP 500" in e for e in errors)


# --- incidents through the whole bot, on virtual time -------------------------------------------


@dataclass
class Recorder:
    name: str = "recorder"
    alerts: list[Alert] = field(default_factory=list)

    async def deliver(self, alert: Alert, timeout: float) -> None:
        self.alerts.append(alert)

    def states(self) -> list[tuple[str, str]]:
        return [(a.event, a.state) for a in self.alerts]


@dataclass
class Hanging:
    name: str = "hanging"
    calls: int = 0

    async def deliver(self, alert: Alert, timeout: float) -> None:
        self.calls += 1
        await asyncio.Event().wait()


@dataclass
class Failing:
    name: str = "failing"
    calls: int = 0

    async def deliver(self, alert: Alert, timeout: float) -> None:
        self.calls += 1
        raise DeliveryError("HTTP 500")


PLAYBOOK = textwrap.dedent("""\
    name: 直播营
    days: 3
    timezone: Asia/Shanghai
    tracks:
      lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3]}
    schedule:
      - {id: a, day: 1, at: "08:00", post: "早上好"}
      - {id: b, day: 1, at: "08:01", post: "第二条"}
      - {id: c, day: 1, at: "08:02", post: "第三条"}
      - {id: d, day: 1, at: "09:00", post: "九点"}
      - {id: e, day: 1, at: "09:01", post: "九点零一"}
      - {id: f, day: 1, at: "20:00", post: "晚上好"}
""")


async def alerting(harness, *channels, now: str = "day 1 07:00", **settings) -> Harness:
    h: Harness = await harness(PLAYBOOK, operators=("op1",), now=now)
    h.bot.alerting.configure(
        AlertSettings(channels=channels, language="en", label="[cohortbot c1]", **settings)
    )
    return h


async def test_hanging_and_failing_channels_never_delay_the_groups_messages(harness, caplog):
    hanging, failing, recorder = Hanging(), Failing(), Recorder()
    h = await alerting(harness, hanging, failing, recorder)
    await h.until("day 1 07:59:59")
    await h.bot.engine.on_event(LoggedOut(h.clock.now(), "logged out on the phone"))
    await h.until("day 1 09:01")
    await h.settle()
    # Every post at its minute, to the second, while one channel hangs and one fails.
    assert [h.local(s) for s in h.room()] == [
        "01 08:00:00",
        "01 08:01:00",
        "01 08:02:00",
        "01 09:00:00",
        "01 09:01:00",
    ]
    assert recorder.states() == [("logged_out", "open")]
    assert h.run.cal.local(recorder.alerts[0].at).strftime("%H:%M:%S") == "08:00:29"  # after 30 s
    assert (hanging.calls, failing.calls) == (3, 3)  # tried three times each, then given up
    errors = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
    assert len(errors) == 2
    assert "to failing after 3 attempts: HTTP 500" in errors[0]
    assert "to hanging after 3 attempts: no answer in 10 s" in errors[1]


async def test_a_flapping_gateway_is_one_alert_when_it_opens_and_one_when_it_is_resolved(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    engine = h.bot.engine

    async def down(minutes: float, up: float) -> None:
        await engine.on_event(Disconnected(h.clock.now(), "cannot reach it", "127.0.0.1:8788"))
        await asyncio.sleep(minutes * 60)
        await engine.on_event(Reconnected(h.clock.now()))
        await asyncio.sleep(up * 60)

    await down(4, 1)  # shorter than gateway_down (5 min): nobody is told
    assert recorder.alerts == []
    for _ in range(10):  # down 6 minutes, up 1, for an hour and more
        await down(6, 1)
    await asyncio.sleep(3600)
    assert recorder.states() == [("gateway_down", "open"), ("gateway_down", "resolved")]
    opened, resolved = recorder.alerts
    assert "has not answered for 5 minutes (cannot reach it)" in opened.text
    assert opened.incident == resolved.incident
    assert "127.0.0.1:8788" in opened.text


async def test_a_gateway_flapping_all_afternoon_stays_a_handful_of_alerts(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    for _ in range(20):  # three hours: down 6 minutes, up 3 (longer than the first settle)
        await h.bot.engine.on_event(Disconnected(h.clock.now(), "stalled"))
        await asyncio.sleep(6 * 60)
        await h.bot.engine.on_event(Reconnected(h.clock.now()))
        await asyncio.sleep(3 * 60)
    await asyncio.sleep(3600)
    states = recorder.states()
    assert states[-1] == ("gateway_down", "resolved")
    assert len(states) <= 4, states


async def test_sends_that_keep_failing_open_an_incident_resolved_when_they_go_out_again(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    send_room = h.group.send_room
    broken = True

    async def refusing(room_id: str, text: str, mentions=()) -> None:
        if broken:
            raise SendError("the gateway refused the message: WeChat busy", retry=False)
        await send_room(room_id, text, mentions)

    h.group.send_room = refusing  # type: ignore[method-assign]
    await h.until("day 1 08:30")
    await h.settle()
    broken = False
    assert recorder.states() == [("sends_failing", "open")]
    opened = recorder.alerts[0]
    assert "3 messages failed to send since 12-01 08:00" in opened.text
    assert "WeChat busy" in opened.text
    assert h.run.cal.local(opened.at).strftime("%H:%M") == "08:02"
    # The operators' private alert in WeChat went out: not a sign that the group works again.
    assert h.dms("op1") and not h.room()
    await h.until("day 1 08:59")
    assert len(recorder.alerts) == 1
    await h.until("day 1 10:00")
    assert recorder.states() == [("sends_failing", "open"), ("sends_failing", "resolved")]
    resolved = recorder.alerts[1]
    assert (
        9 * 60 + 5
        <= int(h.run.cal.local(resolved.at).strftime("%H")) * 60
        + int(h.run.cal.local(resolved.at).strftime("%M"))
        <= 9 * 60 + 7
    )  # the 09:00 post went out, then 5 quiet minutes


async def test_a_logout_followed_by_a_qr_code_is_one_alert_with_the_code(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    engine = h.bot.engine
    await engine.on_event(LoggedOut(h.clock.now(), "logged out on the phone"))
    await asyncio.sleep(5)
    await engine.on_event(LoginNeeded(h.clock.now(), "https://login.weixin.qq.com/l/A1", "waiting"))
    await asyncio.sleep(20)
    await engine.on_event(LoginNeeded(h.clock.now(), "https://login.weixin.qq.com/l/B2", "waiting"))
    await asyncio.sleep(300)
    await engine.on_event(LoginNeeded(h.clock.now(), "https://login.weixin.qq.com/l/C3", "timeout"))
    await engine.on_event(Reconnected(h.clock.now()))
    await asyncio.sleep(120)
    assert recorder.states() == [("logged_out", "open"), ("logged_out", "resolved")]
    opened, resolved = recorder.alerts
    # The latest code when the alert went, as a page that draws it.
    assert "https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com%2Fl%2FB2" in opened.text
    assert "logged in again (after 5 minutes)" in resolved.text


async def test_a_logout_and_a_login_within_seconds_is_no_incident(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    await h.bot.engine.on_event(LoggedOut(h.clock.now(), "relogin"))
    await asyncio.sleep(3)
    await h.bot.engine.on_event(Reconnected(h.clock.now(), ids_changed=True))
    await asyncio.sleep(600)
    assert recorder.alerts == []


async def test_alert_texts_in_chinese(harness):
    recorder = Recorder()
    h = await alerting(harness, recorder)
    h.bot.alerting.configure(AlertSettings(channels=(recorder,), language="zh", label="[cohortbot c1]"))
    await h.bot.engine.on_event(Disconnected(h.clock.now(), "cannot reach it", "127.0.0.1:8788"))
    await asyncio.sleep(6 * 60)
    await h.bot.engine.on_event(Reconnected(h.clock.now()))
    await asyncio.sleep(3 * 60)
    opened, resolved = recorder.alerts
    assert opened.text.startswith("⚠️ [cohortbot c1] 微信网关 127.0.0.1:8788 已经 5 分钟没有响应")
    assert "网关" in resolved.text and "恢复" in resolved.text
    assert i18n.current() == "en"  # the operators' language, whatever the process's


def test_every_alert_text_has_its_chinese():
    from bot import incidents

    texts = [v for k, v in vars(incidents).items() if k.isupper() and isinstance(v, str) and "{label}" in v]
    assert len(texts) == 13
    for text in texts:
        zh = i18n.gettext_in("zh", text)
        assert zh != text, text
        assert set(_fields(zh)) == set(_fields(text)), text


def _fields(text: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(text) if f]


async def test_settings_reach_the_channels_after_a_live_edit(harness):
    first, second = Recorder("first"), Recorder("second")
    h = await alerting(harness, first)
    h.bot.alerting.configure(AlertSettings(channels=(second,), language="en"))
    await h.bot.engine.on_event(LoggedOut(h.clock.now(), "x"))
    await asyncio.sleep(60)
    assert first.alerts == [] and second.states() == [("logged_out", "open")]


async def test_an_invalid_live_edit_is_one_alert_and_a_valid_one_resolves_it(harness, tmp_path):
    from tests.test_live_edit import CONFIG, edit, live

    h, reloader = await live(harness, tmp_path)
    recorder = Recorder()
    h.bot.alerting.configure(AlertSettings(channels=(recorder,), language="en", label="[cohortbot c1]"))
    edit(tmp_path, 'at: "15:00"', 'at: "25:00"')
    assert await reloader.reload() is None
    edit(tmp_path, 'at: "20:00"', 'at: "26:00"')  # another mistake, same incident
    assert await reloader.reload() is None
    await asyncio.sleep(600)
    assert recorder.states() == [("invalid_edit", "open")]
    assert (
        f"{tmp_path / 'playbook.yaml'}:8: schedule[1].at: '25:00' is not a time of day"
        in recorder.alerts[0].text
    )
    edit(tmp_path, 'at: "25:00"', 'at: "16:00"')
    edit(tmp_path, 'at: "26:00"', 'at: "20:00"')
    assert await reloader.reload() is not None
    await asyncio.sleep(120)
    assert recorder.states() == [("invalid_edit", "open"), ("invalid_edit", "resolved")]
    # `alerts:` itself applies live: a webhook added to the config is used from then on.
    assert CONFIG.endswith("start: 2026-12-01}\n")
    (tmp_path / "config.yaml").write_text(
        CONFIG + "alerts: {webhook: {url: 'https://ops.example.com/hook'}}\n", encoding="utf-8"
    )
    done = await reloader.reload()
    assert done is not None and "alerts" in done.settings
    [webhook] = h.bot.alerting.notifier.channels
    assert isinstance(webhook, JsonWebhook) and webhook.url == "https://ops.example.com/hook"
