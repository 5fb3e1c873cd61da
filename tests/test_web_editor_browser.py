"""The playbook editor in a real headless Chromium over a real bot (its own thread, real
clock pace): CodeMirror with line numbers from the package, a mistake marked on its line,
fixed, saved, and the change live and reported. Screenshots go to /tmp/web-shots/ when that
folder exists."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import date, time
from pathlib import Path
from typing import Any

import pytest

from bot import config as configs
from bot.app import Bot
from bot.clock import PacedLoop, VirtualClock
from bot.cohort import CohortRun
from bot.engine import Settings
from bot.plan import calendar
from bot.reload import Reloader
from bot.scenario import BOT_ID
from bot.transports.base import Member
from bot.transports.simulated import SimulatedGroup
from bot.web import auth
from bot.web.app import WebSettings, create_app, hooks_of
from bot.web.serve import Served
from storage.db import open_db
from tests.harness import members
from tests.test_live_edit import CONFIG, PLAYBOOK
from tests.test_web_browser import CHROMIUM, PASSWORD, Live, shot


@pytest.fixture
def editing(tmp_path: Path) -> Iterator[tuple[Live, CohortRun]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI: .ci/run installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} here: apt-get install -y chromium")
    (tmp_path / "playbook.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    loaded = configs.load(tmp_path / "config.yaml", env={})
    pb = loaded.playbooks["c1"]
    cal = calendar(pb, date(2026, 12, 1))
    loop = PacedLoop(cal.at(1, time(7, 0)), speed=1.0)
    clock = VirtualClock(loop)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    run = CohortRun.create("c1", pb, cal, "训练营 1 班")
    state: dict[str, Any] = {}

    async def up() -> str:
        people = members("u1:小明")
        group = SimulatedGroup(
            clock, rooms={"room": "训练营 1 班"}, members=people, bot=Member(BOT_ID, "Bot")
        )
        db = open_db(f"sqlite:///{tmp_path / 'bot.db'}")
        settings = Settings(operators=frozenset(), language="en")
        bot = Bot(db, group, clock, settings, [run], reconcile_minutes=0)
        await bot.start()
        auth.add_operator(db, "alice", PASSWORD, [], None, clock.now())
        hooks = replace(
            hooks_of(bot.engine, bot.alerting), reload=Reloader(bot, loaded, settle=0.05, env={}).reload
        )
        app = create_app(db, hooks, WebSettings(language="en", poll_seconds=0.3), clock)
        served = Served(app, "127.0.0.1:0")
        await served.start()
        state.update(bot=bot, served=served, group=group, db=db)
        return f"http://127.0.0.1:{served.port}"

    url = asyncio.run_coroutine_threadsafe(up(), loop).result(timeout=30)
    it = Live(loop, state["group"], url)
    try:
        yield it, run
    finally:

        async def down() -> None:
            await state["served"].stop()
            await state["bot"].stop()
            state["db"].dispose()

        it.call(down())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


EDIT = """cm => {
    const c = document.querySelector('.CodeMirror').CodeMirror;
    c.setValue(c.getValue().replace(cm[0], cm[1]));
}"""


def test_the_playbook_editor_in_chromium(editing: tuple[Live, CohortRun], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    live, run = editing
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
            fetched: list[str] = []
            page.on("request", lambda req: fetched.append(req.url))
            page.goto(live.url + "/login")
            page.fill("input[name=name]", "alice")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.goto(live.url + "/cohort/c1")
            page.click("text=Edit the playbook")
            expect(page.locator(".CodeMirror")).to_be_visible()
            lines = page.locator(".CodeMirror-code > div")
            expect(lines.nth(7).locator(".CodeMirror-linenumber")).to_have_text("8")
            expect(lines.nth(7)).to_contain_text("下午茶")
            # A mistake on line 8: marked there, with the message, and nothing saved.
            page.evaluate(EDIT, ['at: "15:00"', 'at: "25:00"'])
            page.click("button[value=check]")
            expect(lines.nth(7).locator(".mark-error")).to_have_count(1)
            expect(page.locator(".line-error")).to_have_count(1)
            title = lines.nth(7).locator(".mark-error").get_attribute("title") or ""
            assert "Error, line 8" in title and "'25:00' is not a time of day" in title
            page.click("button[value=save]")  # checked first: the errors, no question, no save
            expect(page.locator("#result")).to_contain_text("it cannot be saved until they are fixed")
            shot(page, "5-editor-error", tmp_path)
            assert 'at: "15:00"' in Path(run.playbook.path).read_text(encoding="utf-8")
            # Fixed: the mark goes, and the save is live and told.
            page.evaluate(EDIT, ['at: "25:00"', 'at: "16:00"'])
            page.click("button[value=check]")
            expect(page.locator(".mark-error")).to_have_count(0)
            expect(page.locator("#result")).to_contain_text(
                "Saving it changes: 1 item moved (tea to day 1 16:00)"
            )
            asked: list[str] = []
            page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
            page.click("button[value=save]")
            expect(page.locator("#result")).to_contain_text("Saved; the edit is live.", timeout=10_000)
            assert asked == [
                "Saving it changes: 1 item moved (tea to day 1 16:00) Save and make it live now?"
            ]
            expect(page.locator("#result")).to_contain_text("1 item moved (tea to day 1 16:00)")
            shot(page, "6-editor-saved", tmp_path)
            # Someone else saves meanwhile: refused, the difference shown, this text kept.
            path = Path(run.playbook.path)
            path.write_text(path.read_text(encoding="utf-8").replace("晚上好", "晚安"), encoding="utf-8")
            page.evaluate(EDIT, ["早上好", "早上好呀"])
            page.click("button[value=save]")
            expect(page.locator("#result")).to_contain_text("someone else saved this playbook")
            expect(page.locator(".text-diff")).to_contain_text(
                '-  - {id: evening, day: 1, at: "20:00", post: "晚安"}'
            )
            expect(page.locator(".CodeMirror")).to_contain_text("早上好呀")
            shot(page, "7-editor-conflict", tmp_path)
            assert b"\r" not in Path(run.playbook.path).read_bytes()
            tea = next(p for p in run.plan if p.item_id == "tea")
            assert run.cal.local(tea.due).strftime("%H:%M") == "16:00"
        finally:
            browser.close()
    assert [u for u in fetched if not u.startswith(live.url)] == []  # nothing from a CDN
    assert any(u.endswith("/static/codemirror.min.js") for u in fetched)
