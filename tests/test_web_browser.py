"""The web console in a real headless Chromium (Debian's, through Playwright), over a real bot
on the real clock in a thread of its own: log in, watch a check-in appear without reloading,
pause and see the next item held, and the refusals. Screenshots of each page go to
/tmp/web-shots/ when that folder exists."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.clock import PacedLoop, VirtualClock
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.plan import calendar
from bot.scenario import BOT_ID
from bot.transports.base import Disconnected, Member, Reconnected
from bot.transports.simulated import SimulatedGroup
from bot.web import auth
from bot.web.app import WebSettings, create_app, hooks_of
from bot.web.serve import Served
from storage import repo
from storage.db import open_db
from tests.harness import load_playbook, members

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
SHOTS = Path("/tmp/web-shots")
START = date(2026, 12, 1)


@dataclass
class Live:
    loop: asyncio.AbstractEventLoop
    group: SimulatedGroup
    url: str
    db: Any = None
    bot: Any = None

    def call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=10)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} here: apt-get install -y chromium")
    from tests.harness import EXAMPLE

    pb = load_playbook(EXAMPLE)
    cal = calendar(pb, START)
    # 25 seconds before day 2's 21:30 reminder: time to log in and pause before it falls due.
    loop = PacedLoop(cal.at(2, time(21, 29, 35)), speed=1.0)
    clock = VirtualClock(loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    people = members("u1:小明", "u2:<b>小红</b>", "u3:王芳")
    state: dict[str, Any] = {}

    async def up() -> str:
        group = SimulatedGroup(
            clock, rooms={"room": "训练营 1 班"}, members=people, bot=Member(BOT_ID, "Bot")
        )
        run = CohortRun.create("c1", pb, cal, "训练营 1 班")
        db = open_db(f"sqlite:///{tmp_path / 'bot.db'}")
        bot = Bot(
            db, group, clock, Settings(operators=frozenset(), language="en"), [run], reconcile_minutes=0
        )
        await bot.start()
        auth.add_operator(db, "alice", PASSWORD, [], None, clock.now())
        app = create_app(
            db,
            hooks_of(bot.engine, bot.alerting),
            WebSettings(language="en", poll_seconds=0.3, overview_seconds=0.5),
            clock,
        )
        served = Served(app, "127.0.0.1:0")
        await served.start()
        state.update(bot=bot, served=served, group=group, db=db)
        return f"http://127.0.0.1:{served.port}"

    url = asyncio.run_coroutine_threadsafe(up(), loop).result(timeout=30)
    it = Live(loop, state["group"], url, state["db"], state["bot"])
    try:
        yield it
    finally:

        async def down() -> None:
            await state["served"].stop()
            await state["bot"].stop()
            state["db"].dispose()

        it.call(down())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


async def _now() -> Any:
    return asyncio.get_running_loop().now()  # type: ignore[attr-defined]


def shot(page: Any, name: str, tmp: Path) -> None:
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / path.name)


def test_the_console_in_chromium(live: Live, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1100, "height": 900})
            page = context.new_page()
            fetched: list[str] = []
            page.on("request", lambda req: fetched.append(req.url))
            page.on("dialog", lambda dialog: dialog.accept())  # every action asks first
            # Not logged in: the page sends to the login, the API says 401.
            page.goto(live.url + "/cohort/c1")
            expect(page).to_have_url(live.url + "/login")
            assert page.request.get(live.url + "/cohort/c1/live").status == 401
            shot(page, "1-login", tmp_path)
            page.fill("input[name=name]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            expect(page.locator(".cohort h2")).to_contain_text("训练营 1 班")
            expect(page.locator(".cohort")).to_contain_text("Day 2 of 8")
            shot(page, "2-overview", tmp_path)
            # The connection as the transport tells it, refreshed without reloading.
            link = page.locator("#link")
            expect(link).to_contain_text("Logged in, gateway reachable")
            live.call(live.bot.engine.on_event(Disconnected(live.call(_now()), "cannot reach it")))
            expect(link).to_contain_text("Gateway not reachable", timeout=5_000)
            expect(link).to_contain_text("(cannot reach it)")
            shot(page, "2-overview-gateway-down", tmp_path)
            live.call(live.bot.engine.on_event(Reconnected(live.call(_now()))))
            expect(link).to_contain_text("Logged in, gateway reachable", timeout=5_000)
            page.click(".cohort")
            row = page.locator('tr[data-member="u1"]')
            expect(row).to_contain_text("Not yet")
            expect(page.locator('tr[data-member="u2"] td').first).to_have_text("<b>小红</b>")  # escaped
            # A check-in in the group appears without reloading.
            live.call(live.group.say("u1", "打卡"))
            expect(row.locator("td.state.done")).to_have_count(1, timeout=10_000)
            # Pause; the 21:30 reminder falls due and is held, listed with send/skip.
            page.click("button.warn")
            expect(page.locator("#paused")).to_contain_text("web:alice")
            expect(page.locator('#timeline li[data-item="d2-2130-remind-lesson"]')).to_have_class(
                "held", timeout=40_000
            )
            expect(page.locator("#held")).to_contain_text("d2-2130-remind-lesson")
            expect(page.locator("#audit")).to_contain_text("pause")
            page.fill("#search", "小")
            page.select_option("#state", "done")
            expect(page.locator('tr[data-member="u1"]')).to_be_visible()
            expect(page.locator('tr[data-member="u2"]')).to_be_hidden()  # not done
            expect(page.locator('tr[data-member="u3"]')).to_be_hidden()  # 王芳: not "小"
            page.select_option("#state", "")
            page.fill("#search", "")
            shot(page, "3-cohort", tmp_path)
            # A forged form (no or a wrong token) is refused.
            forged = page.evaluate(
                """async () => (await fetch('/cohort/c1/act', {method: 'POST',
                    headers: {'Content-Type': 'application/x-www-form-urlencoded', 'X-CSRF-Token': 'forged'},
                    body: 'action=resume'})).status"""
            )
            assert forged == 403
            expect(page.locator("#paused")).to_be_visible()
            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
            )
            small = phone.new_page()
            small.goto(live.url + "/cohort/c1")
            expect(small.locator("#roster")).to_be_visible()
            width = small.evaluate("document.documentElement.scrollWidth")
            shot(small, "4-cohort-phone", tmp_path)
            assert width <= 400  # no sideways scrolling on a phone
            # The report: its charts drawn with the console's own ECharts; then a member.
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.click("#report-link")
            expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=10_000)
            expect(page.locator("#chart-funnel canvas")).to_have_count(1)
            shot(page, "8-report", tmp_path)
            small.goto(live.url + "/cohort/c1/report")
            expect(small.locator("body")).to_have_attribute("data-ready", "1", timeout=10_000)
            assert small.evaluate("document.documentElement.scrollWidth") <= 400
            shot(small, "9-report-phone", tmp_path)
            with live.db.begin() as conn:  # a private message that failed for good
                now = live.call(_now())
                row = repo.enqueue(conn, "c1", text="失败的私信", kind="reply", now=now, member_id="u1")
                repo.mark(conn, [row], "failed", error="gateway down")
            page.goto(live.url + "/cohort/c1")
            page.click('tr[data-member="u1"] a')
            expect(page.locator("#checkins")).to_contain_text("day 2")
            expect(page.locator("#messages li.failed")).to_contain_text("失败的私信")
            shot(page, "10-member", tmp_path)
            page.click("#messages li.failed button")  # confirmed by the dialog handler
            expect(page.locator("#messages li.failed")).to_have_count(0, timeout=10_000)
            expect(page.locator("#messages")).to_contain_text("失败的私信")
            expect(page.locator("#member h1")).to_have_count(1)  # the member's part, swapped once
            assert errors == []  # nothing refused by the page's CSP
        finally:
            browser.close()
    assert [u for u in fetched if not u.startswith(live.url)] == []  # nothing from a CDN
    assert not any(u.endswith("/act") for u in fetched[:3])
