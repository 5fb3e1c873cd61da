"""The web console over a real bot on virtual time (tests/harness.py), through its ASGI app:
who may see it (sessions, CSRF, the login limit, cohort limits), names escaped, and actions
that are the operator commands' own (the same pause, the same audit log)."""

from __future__ import annotations

import asyncio
import re
import sqlite3

import httpx
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.transports.base import Disconnected, LoginNeeded, Reconnected
from bot.web import auth
from bot.web.app import WebSettings, create_app, hooks_of
from storage import repo
from storage.db import open_db
from tests.harness import Harness, members

PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"
SQL = "Robert'); DROP TABLE member;--"


async def console(h: Harness, language: str = "en") -> httpx.AsyncClient:
    auth.add_operator(h.bot.db, "alice", PASSWORD, [], None, h.clock.now())
    auth.add_operator(h.bot.db, "bob", PASSWORD, ["elsewhere"], None, h.clock.now())
    app = create_app(
        h.bot.db,
        hooks_of(h.bot.engine, h.bot.alerting),
        WebSettings(language=language, verify_in_thread=False),
        h.clock,
    )
    return client_of(app)


def client_of(app: object, address: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 5000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def token(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found[1]


async def log_in(c: httpx.AsyncClient, name: str = "alice", password: str = PASSWORD) -> httpx.Response:
    form = await c.get("/login")
    return await c.post("/login", data={"csrf": token(form.text), "name": name, "password": password})


async def act(c: httpx.AsyncClient, action: str, **more: str) -> httpx.Response:
    csrf = token((await c.get("/cohort/c1")).text)
    headers = {"X-CSRF-Token": csrf, "HX-Request": "true"}
    return await c.post("/cohort/c1/act", data={"action": action, **more}, headers=headers)


PEOPLE = members("u1:小明", f"u2:{XSS}", f"u3:{SQL}")


async def test_no_page_or_api_without_a_session(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h) as c:
        assert (await c.get("/")).status_code == 303
        assert (await c.get("/")).headers["location"] == "/login"
        assert (await c.get("/cohort/c1")).status_code == 303
        assert (await c.get("/cohort/c1/live")).status_code == 401
        assert (await c.get("/cohort/c1/events")).status_code == 401
        assert (await c.post("/cohort/c1/act", data={"action": "pause"})).status_code == 401
        with h.bot.db.connect() as conn:
            assert repo.paused(conn, "c1") is None
        page = await c.get("/login")
        assert page.status_code == 200 and "5 attempts a minute" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        wrong = await log_in(c, password="not the password")
        assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
        assert (await log_in(c, name="nobody")).status_code == 401
        ok = await log_in(c)
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie


async def test_overview_and_roster_escape_names_and_show_todays_state(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    await h.say("u1", "晨读打卡")
    await h.settle()
    async with await console(h) as c:
        await log_in(c)
        overview = await c.get("/")
        assert "训练营 1 班" in overview.text and "Day 2 of 8" in overview.text
        assert re.search(r"晨读</span><span>1/3<", overview.text)
        page = (await c.get("/cohort/c1")).text
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert SQL not in page and "Robert&#39;); DROP TABLE member;--" in page
        row = re.search(r'<tr data-name="小明".*?</tr>', page, re.S)
        assert row and "✅ Done" in row[0] and "Not yet" in row[0]  # reading done, lesson not yet
        assert "d2-0730-post" in page  # today's timeline
    with h.bot.db.connect() as conn:
        assert len(repo.learners(conn, "c1")) == 3  # the names were data, not SQL


async def test_forged_or_missing_csrf_tokens_are_refused(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h) as c:
        form = await c.get("/login")
        no_token = await c.post("/login", data={"name": "alice", "password": PASSWORD})
        assert no_token.status_code == 403
        await log_in(c)
        for headers in ({}, {"X-CSRF-Token": "forged"}, {"X-CSRF-Token": token(form.text)}):
            r = await c.post("/cohort/c1/act", data={"action": "pause"}, headers=headers)
            assert r.status_code == 403, headers  # the login page's token is stale once logged in
        assert (await c.post("/logout", data={"csrf": "forged"})).status_code == 403
    with h.bot.db.connect() as conn:
        assert repo.paused(conn, "c1") is None and repo.actions(conn, "c1") == []


async def test_login_attempts_are_limited_per_address_and_per_name(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h) as c:
        for _ in range(auth.ATTEMPTS):
            assert (await log_in(c, password="wrong password")).status_code == 401
        limited = await log_in(c)  # the right password, but too many tries
        assert limited.status_code == 429 and "Too many attempts" in limited.text
        other = client_of(c._transport.app)  # type: ignore[attr-defined]
        async with other:  # another address, the same name: limited too
            assert (await log_in(other)).status_code == 429
        await asyncio.sleep(61)
        assert (await log_in(c)).status_code == 303


async def test_pause_from_the_web_holds_the_next_item_and_is_in_the_audit_log(harness):
    h = await harness(people=PEOPLE, now="day 2 20:00")
    async with await console(h) as c:
        await log_in(c)
        r = await act(c, "pause")
        assert r.status_code == 200 and "Paused since" in r.text and "web:alice" in r.text
        await h.until("day 2 21:31")
        with h.bot.db.connect() as conn:
            assert [i for i, _due in repo.held_items(conn, "c1")] == ["d2-2130-remind-lesson"]
            assert [a[1:3] for a in repo.actions(conn, "c1")] == [("web:alice", "pause")]
        page = (await c.get("/cohort/c1")).text
        assert 'id="held"' in page and "d2-2130-remind-lesson" in page
        r = await act(c, "send")
        assert "Resumed" in r.text and "Sent now: d2-2130-remind-lesson" in r.text
        await h.settle()
    assert any("今天的课还没完成" in s.text for s in h.room())
    with h.bot.db.connect() as conn:
        assert [a[2] for a in repo.actions(conn, "c1")] == ["send-held", "resume", "pause"]


async def test_remind_now_goes_through_the_operator_command(harness):
    h = await harness(people=PEOPLE, now="day 2 10:00")
    async with await console(h) as c:
        await log_in(c)
        r = await act(c, "remind", track="lesson")
        assert "Reminder sent for 正课: 3 members" in r.text
        await h.settle()
    assert any("今天的课还没完成" in s.text for s in h.room())


async def test_an_operator_limited_to_other_cohorts_sees_none_of_this_one(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h) as c:
        assert (await log_in(c, name="bob")).status_code == 303
        overview = await c.get("/")
        assert "训练营 1 班" not in overview.text and "No cohort to show" in overview.text
        assert (await c.get("/cohort/c1")).status_code == 404
        assert (await c.get("/cohort/c1/live")).status_code == 404
        csrf = token(overview.text)
        r = await c.post("/cohort/c1/act", data={"action": "pause"}, headers={"X-CSRF-Token": csrf})
        assert r.status_code == 404
    with h.bot.db.connect() as conn:
        assert repo.paused(conn, "c1") is None


async def test_a_new_password_ends_the_old_sessions(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h) as c:
        await log_in(c)
        assert (await c.get("/")).status_code == 200
        auth.add_operator(h.bot.db, "alice", "another long password", [], None, h.clock.now())
        assert (await c.get("/")).status_code == 303


async def test_the_console_in_chinese(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    async with await console(h, language="zh") as c:
        assert "登录" in (await c.get("/login")).text
        await log_in(c)
        assert "第 2 天，共 8 天" in (await c.get("/")).text
        await c.get("/lang/en")
        assert "Day 2 of 8" in (await c.get("/")).text


def link_panel(page: str) -> str:
    found = re.search(r'<section class="card link.*?</section>', page, re.S)
    assert found, page
    return found[0]


async def test_the_overview_shows_the_connection_and_the_alerts_that_are_not_over(harness):
    h = await harness(people=PEOPLE, now="day 2 08:00")
    engine = h.bot.engine
    async with await console(h) as c:
        await log_in(c)
        panel = link_panel((await c.get("/")).text)
        assert "Logged in, gateway reachable" in panel and "incident" not in panel
        assert "Nothing heard from WeChat yet" in panel
        await h.say("u1", "晨读打卡")
        await h.settle()
        assert "Last heard from WeChat at 12-02 08:00" in link_panel((await c.get("/")).text)

        await engine.on_event(Disconnected(h.clock.now(), "cannot reach it", "127.0.0.1:8788"))
        panel = link_panel((await c.get("/")).text)
        assert "Gateway not reachable" in panel and "(cannot reach it)" in panel
        assert "data-incident" not in panel  # not an incident before it has lasted 5 minutes
        await asyncio.sleep(6 * 60)
        panel = link_panel((await c.get("/")).text)
        assert 'data-incident="gateway_down"' in panel and "over; checking" not in panel
        await engine.on_event(Reconnected(h.clock.now()))
        panel = link_panel((await c.get("/")).text)
        assert "Logged in, gateway reachable" in panel
        assert 'data-incident="gateway_down"' in panel and "over; checking it stays so" in panel
        await asyncio.sleep(3 * 60)
        assert "data-incident" not in link_panel((await c.get("/")).text)  # resolved

        qrcode = "https://login.weixin.qq.com/l/abc=="
        await engine.on_event(LoginNeeded(h.clock.now(), qrcode, "waiting"))
        await asyncio.sleep(60)
        panel = link_panel((await c.get("/")).text)
        assert "Account logged out" in panel and 'data-incident="logged_out"' in panel
        assert "https://wechaty.js.org/qrcode/https%3A%2F%2Flogin.weixin.qq.com" in panel
    async with await console(h) as c:
        await log_in(c, name="bob")  # limited to other cohorts: the account's QR code is not hers
        panel = link_panel((await c.get("/")).text)
        assert "Account logged out" in panel and "wechaty.js.org/qrcode" not in panel


def test_operator_add_stores_an_argon2_hash_and_refuses_bad_input(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    runner = CliRunner()
    # --db names a bot's database: not a new file (a typo), not another program's, not memory.
    foreign = tmp_path / "other.db"
    sqlite3.connect(foreign).execute("create table t (x)").connection.commit()
    for db, said in [
        (url, "no database file"),
        (str(foreign), "not a cohortbot database"),
        ("sqlite://", "in-memory"),
    ]:
        r = runner.invoke(
            cli, ["operator", "add", "alice", "--db", db, "--password-stdin"], input=PASSWORD + "\n"
        )
        assert r.exit_code == 2 and said in r.output, r.output
    assert not (tmp_path / "bot.db").exists()
    assert sqlite3.connect(foreign).execute("select name from sqlite_master").fetchall() == [("t",)]
    open_db(url).dispose()  # as `cohortbot run` leaves it
    r = runner.invoke(
        cli, ["operator", "add", "alice", "--db", url, "--password-stdin"], input=PASSWORD + "\n"
    )
    assert r.exit_code == 0, r.output
    db = open_db(url)
    with db.connect() as conn:
        login = repo.web_login(conn, "alice")
    assert login is not None and login.password_hash.startswith("$argon2")
    assert PASSWORD not in login.password_hash and auth.verify(login.password_hash, PASSWORD)
    r = runner.invoke(cli, ["operator", "add", "bob", "--db", url, "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "too short" in r.output
    r = runner.invoke(cli, ["operator", "add", "bob", "--db", url], input="a long password\nanother one\n")
    assert r.exit_code == 2 and "differ" in r.output
    with db.connect() as conn:
        assert repo.web_login(conn, "bob") is None
    db.dispose()
