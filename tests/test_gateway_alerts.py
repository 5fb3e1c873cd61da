"""Alerts outside WeChat through the mock Wechaty gateway, on the real clock: the account
logging out and the gateway's QR code reach a webhook as one alert, its login as one
resolved; a gateway that dies is told after `gateway_down`, and its return too."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bot.app import Bot
from bot.clock import SystemClock
from bot.engine import Settings
from bot.incidents import AlertSettings, Incidents
from bot.notify import Delivery, JsonWebhook, WeComRobot
from bot.transports.wechaty import WechatyTransport
from storage.db import open_db
from tests.alert_servers import HookServer, hook_server
from tests.gateway.driver import Gateway
from tests.test_gateway import FAST, WORLD, cohort

pytestmark = pytest.mark.gateway

@pytest.fixture
def gateway():
    with Gateway(WORLD) as gw:
        yield gw


QUICK = {"gateway_down": timedelta(seconds=0.5), "logged_out": timedelta(seconds=0.5)}


async def start(gw: Gateway, tmp_path, *hooks: str, logged_out: float = 1.0) -> Bot:
    clock = SystemClock()
    db = open_db(f"sqlite:///{tmp_path / 'bot.db'}")
    alerts = AlertSettings(
        channels=(
            JsonWebhook(hooks[0], {"Authorization": "Bearer s3cret"}),
            *(WeComRobot(h) for h in hooks[1:]),
        ),
        delivery=Delivery(timeout=2, attempts=2, pause=0.2),
        gateway_down=timedelta(seconds=1),
        logged_out=timedelta(seconds=logged_out),
        language="en",
        label="[cohortbot gw]",
        cohorts="gw",
        settle=QUICK,
    )
    transport = WechatyTransport(
        gw.endpoint, gw.token, clock, connect_timeout=30, room_wait=10, ping_every=1, ping_timeout=2
    )
    bot = Bot(
        db,
        transport,
        clock,
        Settings(operators=frozenset({"op1"}), pacing=FAST, quiet_hours=None),
        [cohort({"post": 3600})],
        reconcile_minutes=0,
        incidents=Incidents(db, clock, alerts),
    )
    await bot.start()
    return bot


async def posted(hook: HookServer, event: str, state: str, timeout: float = 20) -> dict:
    p = await asyncio.to_thread(
        hook.wait, lambda p: p.body.get("event") == event and p.body.get("state") == state, timeout
    )
    return p.body


def bodies(hook: HookServer) -> list[tuple[str, str]]:
    return [(p.body.get("event"), p.body.get("state")) for p in hook.posts if "event" in p.body]


async def test_logout_and_qr_code_reach_the_webhook_once_and_the_login_resolves(gateway, tmp_path):
    with hook_server() as hook, hook_server() as wecom:
        bot = await start(gateway, tmp_path, hook.url(), wecom.url("/cgi-bin/webhook/send?key=k-123"))
        try:
            await gateway.alogout("logged out on the phone")
            await gateway.ascan("https://login.weixin.qq.com/l/Abc123==")
            opened = await posted(hook, "logged_out", "open")
            assert opened["cohort"] == "gw"
            # The QR code shown after the logout is in the alert, as a page that draws it.
            assert (
                "https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com%2Fl%2FAbc123%3D%3D"
                in (opened["text"])
            )
            assert hook.posts[0].headers["Authorization"] == "Bearer s3cret"
            wecom_post = await asyncio.to_thread(wecom.wait)
            assert wecom_post.path == "/cgi-bin/webhook/send?key=k-123"
            assert wecom_post.body == {"msgtype": "text", "text": {"content": opened["text"]}}
            # More QR codes while it waits are the same incident.
            await gateway.ascan("https://login.weixin.qq.com/l/Def456==")
            await gateway.alogin()
            resolved = await posted(hook, "logged_out", "resolved")
            assert "logged in again" in resolved["text"]
            await asyncio.sleep(1)
            assert bodies(hook) == [("logged_out", "open"), ("logged_out", "resolved")]
            # Sends go out again after the login.
            await gateway.asay("u1", "打卡")
            await gateway.await_sent(lambda s: s["kind"] == "room" and "小明" in s["text"])
        finally:
            await bot.stop()


async def test_a_gateway_that_dies_is_told_after_the_minutes_set_and_its_return_too(gateway, tmp_path):
    with hook_server() as hook:
        bot = await start(gateway, tmp_path, hook.url())
        try:
            await gateway.akill()
            opened = await posted(hook, "gateway_down", "open")
            assert gateway.endpoint in opened["text"]
            await gateway.arestart()
            resolved = await posted(hook, "gateway_down", "resolved", timeout=40)
            assert "answers again" in resolved["text"]
            assert bodies(hook) == [("gateway_down", "open"), ("gateway_down", "resolved")]
        finally:
            await bot.stop()


async def test_a_qr_code_to_scan_while_starting_is_told_and_the_login_resolves_it(tmp_path):
    with Gateway({**WORLD, "loggedOut": True}) as gw, hook_server() as hook:
        starting = asyncio.create_task(start(gw, tmp_path, hook.url(), logged_out=0.2))
        await gw.ascan("https://login.weixin.qq.com/l/Start1==")
        opened = await posted(hook, "logged_out", "open")
        assert "login.weixin.qq.com%2Fl%2FStart1" in opened["text"]
        assert not starting.done()  # the bot waits for the login
        await gw.alogin()
        bot = await starting
        try:
            await posted(hook, "logged_out", "resolved")
            assert bodies(hook) == [("logged_out", "open"), ("logged_out", "resolved")]
        finally:
            await bot.stop()
