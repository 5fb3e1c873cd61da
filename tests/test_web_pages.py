"""The console's report and member pages (bot/web/pages.py) over a real bot on virtual time:
the same numbers as `cohortbot report`'s compute(), the files made on request, names escaped,
and the same sessions and cohort limits as the cohort page."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile

from bot import i18n
from bot.report import compute
from bot.web.pages import CHARTS
from storage import repo
from tests.harness import Harness
from tests.test_web import PEOPLE, SQL, XSS, console, log_in, token

FILES = ("report", "report.xlsx", "report.zip", "report.png", "member/u1")


async def played(harness) -> Harness:  # type: ignore[no-untyped-def]
    h = await harness(people=PEOPLE, now="day 2 08:00")
    await h.say("u1", "晨读打卡")
    await h.say("u2", "晨读打卡")
    await h.until("day 3 08:00")
    await h.say("u1", "晨读打卡")
    await h.settle()
    return h


async def test_no_report_or_member_page_without_a_session_or_for_another_cohort(harness):
    h = await played(harness)
    async with await console(h) as c:
        for path in FILES:
            assert (await c.get(f"/cohort/c1/{path}")).status_code == 303, path
        assert (await log_in(c, name="bob")).status_code == 303  # limited to another cohort
        for path in FILES:
            assert (await c.get(f"/cohort/c1/{path}")).status_code == 404, path


async def test_the_report_page_shows_computes_numbers_and_escapes_names(harness):
    h = await played(harness)
    with h.bot.db.connect() as conn:
        expected = compute(conn, "c1", h.clock.now(), h.run.playbook)
    async with await console(h) as c:
        await log_in(c)
        assert 'href="/cohort/c1/report"' in (await c.get("/cohort/c1")).text
        page = (await c.get("/cohort/c1/report")).text
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert SQL not in page
        for r in expected.funnel:
            row = re.search(rf'<tr data-day="{r.day}" data-track="{r.track}">(.*?)</tr>', page, re.S)
            assert row, (r.day, r.track)
            assert f'<td class="done">{r.done}</td>' in row[1]
            assert f'<td class="in-group">{r.in_group}</td>' in row[1]
        for m in expected.members:
            row = re.search(rf'<tr data-member="{m.member_id}">(.*?)</tr>', page, re.S)
            assert row and f'<td class="checkins">{m.checkins}</td>' in row[1]
        assert any(m.checkins == 2 for m in expected.members)  # u1: two check-ins counted
        options = re.search(r'<script type="application/json" id="report-options">(.*?)</script>', page, re.S)
        assert options and "</" not in options[1] and '"funnel"' in options[1]
        assert set(json.loads(options[1])) <= set(CHARTS)  # a box for every chart the report draws
        js = await c.get("/report-assets/echarts.min.js")
        assert js.status_code == 200 and "echarts" in js.text[:2000]
        assert '<script src="/report-assets/echarts.min.js"' in page  # served here, no CDN
        started = time.perf_counter()
        xlsx = await c.get("/cohort/c1/report.xlsx")
        took = time.perf_counter() - started
        assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK" and took < 2
        assert "attachment" in xlsx.headers["content-disposition"]
        zipped = await c.get("/cohort/c1/report.zip")
        names = zipfile.ZipFile(io.BytesIO(zipped.content)).namelist()
        assert any(n.endswith("funnel.csv") for n in names), names
        png = await c.get("/cohort/c1/report.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert (await c.get("/cohort/c1/report.exe")).status_code == 404


async def test_the_member_page_lists_days_check_ins_rewards_and_messages(harness):
    h = await played(harness)
    async with await console(h) as c:
        await log_in(c)
        roster = (await c.get("/cohort/c1")).text
        assert 'href="/cohort/c1/member/u2"' in roster
        page = (await c.get("/cohort/c1/member/u2")).text
        assert XSS not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        days = re.search(r'<ul class="days" data-track="晨读">(.*?)</ul>', page, re.S)
        assert days and re.search(r'<li class="done" data-day="2">', days[1])
        assert re.search(r'<li class="missed" data-day="2">', page)  # 正课, day 1: closed, not done
        checkins = re.search(r'<ul class="timeline" id="checkins">(.*?)</ul>', page, re.S)
        assert checkins and checkins[1].count("<li>") == 1 and "晨读 · day 2" in checkins[1]
        messages = re.search(r'<ul class="queue" id="messages">(.*?)</ul>', page, re.S)
        assert messages and "None yet." not in messages[1]
        assert (await c.get("/cohort/c1/member/nobody")).status_code == 404


async def test_the_pages_in_chinese(harness):
    h = await played(harness)
    async with await console(h, language="zh") as c:
        await log_in(c)
        report = (await c.get("/cohort/c1/report")).text
        assert "下载" in report and "每天各打卡项的打卡" in report
        member = (await c.get("/cohort/c1/member/u1")).text
        assert "机器人发给 TA 的消息" in member
        zh = sheets((await c.get("/cohort/c1/report.xlsx")).content)
        png = await c.get("/cohort/c1/report.png")  # laid out in the loop: not the process's language
        assert png.content[:4] == b"\x89PNG"
        await c.get("/lang/en")
        en = sheets((await c.get("/cohort/c1/report.xlsx")).content)
    assert len(zh) == len(en) and set(zh).isdisjoint(en), (zh, en)  # the page's language, not the process's
    assert i18n.current() == "en"  # and the process's is left as it was


def sheets(content: bytes) -> list[str]:
    from openpyxl import load_workbook

    return list(load_workbook(io.BytesIO(content), read_only=True).sheetnames)


async def test_a_make_up_marked_from_the_member_page_is_the_operator_commands_own(harness):
    h = await played(harness)
    async with await console(h) as c:
        await log_in(c)
        page = (await c.get("/cohort/c1/member/u2")).text
        button = re.search(r'<li class="missed" data-day="2">.*?hx-vals=\'([^\']+)\'', page, re.S)
        assert button and '"track": "lesson"' in button[1] and '"day": "2"' in button[1]
        form = {"track": "lesson", "day": "2"}
        assert (await c.post("/cohort/c1/member/u2/mark", data=form)).status_code == 403  # no token
        headers = {"X-CSRF-Token": token(page), "HX-Request": "true"}
        r = await c.post("/cohort/c1/member/u2/mark", data=form, headers=headers)
        assert r.status_code == 200 and 'class="reply"' in r.text
        assert re.search(r'<li class="makeup" data-day="2">', r.text)
        again = await c.post("/cohort/c1/member/u2/mark", data=form, headers=headers)
        assert "already" in again.text.lower()
        bad = await c.post("/cohort/c1/member/u2/mark", data={"track": "x", "day": "2"}, headers=headers)
        assert bad.status_code == 404
    with h.bot.db.connect() as conn:
        assert [a[1:4] for a in repo.actions(conn, "c1")] == [("web:alice", "mark", "u2 lesson 2")]


async def test_a_failed_message_resent_from_the_console_goes_out_and_is_in_the_audit_log(harness):
    h = await played(harness)
    with h.bot.db.begin() as conn:
        row = repo.enqueue(conn, "c1", text="你好 <b>u2</b>", kind="reply", now=h.clock.now(), member_id="u2")
        repo.mark(conn, [row], "failed", error="gateway down")
        sent = repo.enqueue(conn, "c1", text="earlier", kind="reply", now=h.clock.now(), member_id="u2")
        repo.mark(conn, [sent], "sent", at=h.clock.now())
    async with await console(h) as c:
        await log_in(c)
        page = (await c.get("/cohort/c1/member/u2")).text
        assert "你好 &lt;b&gt;u2&lt;/b&gt;" in page and f'{{"id": "{row}", "member": "u2"}}' in page
        assert f'{{"id": "{row}"}}' in (await c.get("/cohort/c1")).text  # in the send queue too
        headers = {"X-CSRF-Token": token(page), "HX-Request": "true"}
        # Not failed, not there, not a number (nor one int() or SQL would take).
        for wrong in (str(sent), "999", "x", "²", "9" * 30):
            r = await c.post("/cohort/c1/resend", data={"id": wrong}, headers=headers)
            assert r.status_code == 404, wrong
        assert (await c.post("/cohort/c1/resend", data={"id": str(row)})).status_code == 403
        r = await c.post("/cohort/c1/resend", data={"id": str(row), "member": "u2"}, headers=headers)
        assert r.status_code == 303 and r.headers["location"] == "/cohort/c1/member/u2"  # htmx follows it
        await h.settle()
    with h.bot.db.connect() as conn:
        assert [s for i, _k, s, _t, _nb in repo.send_queue(conn, "c1") if i == row] == []  # sent
        assert [a[1:4] for a in repo.actions(conn, "c1")] == [("web:alice", "resend", f"{row} reply")]
    assert any(s.text == "你好 <b>u2</b>" for s in h.group.sent)
