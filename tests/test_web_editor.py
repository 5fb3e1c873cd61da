"""The playbook editor (bot/web/editor.py) over a real bot on virtual time: problems marked on
their lines in the page's language, what an edit would change, a valid save made live through
the live-edit path (the moved item fires at its new time), and the refusals: errors, a save
over someone else's, a huge post, a stale form, no session, a path in the request."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx

from bot.reload import Reloader
from bot.web import auth
from bot.web.app import WebSettings, create_app, hooks_of
from tests.harness import Harness
from tests.test_live_edit import live, posts, told
from tests.test_web import PASSWORD, client_of, log_in, token

EDITOR = "/cohort/c1/playbook"


async def editor_over(harness, tmp_path: Path, now: str = "day 1 07:00") -> tuple[Harness, object]:
    h, reloader = await live(harness, tmp_path, now=now)
    return h, app_of(h, reloader)


def app_of(h: Harness, reloader: Reloader) -> object:
    auth.add_operator(h.bot.db, "alice", PASSWORD, [], None, h.clock.now())
    auth.add_operator(h.bot.db, "bob", PASSWORD, ["elsewhere"], None, h.clock.now())
    hooks = replace(hooks_of(h.bot.engine, h.bot.alerting), reload=reloader.reload)
    return create_app(h.bot.db, hooks, WebSettings(language="en", verify_in_thread=False), h.clock)


async def opened(c: httpx.AsyncClient) -> tuple[str, str, str]:
    """The editor's text, version and CSRF token, as the page gives them."""
    page = (await c.get(EDITOR)).text
    text = re.search(r'<textarea name="text"[^>]*>(.*?)</textarea>', page, re.S)
    version = re.search(r'name="version" value="([0-9a-f]+)"', page)
    assert text and version, page
    return unescape(text[1]), version[1], token(page)


def unescape(html: str) -> str:
    import html as html_

    return html_.unescape(html)


async def post(c: httpx.AsyncClient, what: str, text: str, version: str, csrf: str) -> httpx.Response:
    data = {"csrf": csrf, "version": version, "text": text}
    return await c.post(f"{EDITOR}/{what}", data=data, headers={"HX-Request": "true"})


def marks(page: str) -> list[tuple[str, str, str]]:
    """(line, level, text) of each problem shown."""
    found = re.findall(r'<li class="\w+" data-line="(\d+)" data-level="(\w+)">(.*?)</li>', page, re.S)
    return [(line, level, unescape(re.sub(r"<[^>]+>", "", said))) for line, level, said in found]


async def test_check_marks_errors_and_warnings_on_their_lines_in_the_page_language(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    before = (tmp_path / "playbook.yaml").read_bytes()
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        assert "下午茶" in text and "CodeMirror" not in text
        bad = text.replace('at: "15:00"', 'at: "25:00"')
        r = await post(c, "check", bad, version, csrf)
        assert r.status_code == 200
        [error] = marks(r.text)
        assert error[:2] == ("8", "error") and "'25:00' is not a time of day" in error[2]
        assert "Error, line 8" in error[2] and "it cannot be saved until they are fixed" in r.text
        late = text.replace('at: "20:00"', 'at: "23:30"')
        [warning] = marks((await post(c, "check", late, version, csrf)).text)
        assert warning[:2] == ("9", "warning") and "23:30 is inside the default quiet hours" in warning[2]
        await c.get("/lang/zh")
        [zh] = marks((await post(c, "check", bad, version, csrf)).text)
        assert zh[:2] == ("8", "error") and zh[2].startswith("错误，第 8 行") and "「25:00」不是时刻" in zh[2]
        [zh_warning] = marks((await post(c, "check", late, version, csrf)).text)
        assert zh_warning[2].startswith("警告，第 9 行") and "默认的免打扰时段" in zh_warning[2]
    assert (tmp_path / "playbook.yaml").read_bytes() == before  # a check saves nothing


async def test_check_tells_what_a_save_would_change(harness, tmp_path):
    h, app = await editor_over(harness, tmp_path)
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        edited = text.replace('at: "15:00"', 'at: "16:00"').replace(
            '  - {id: evening, day: 1, at: "20:00", post: "晚上好"}\n', ""
        )
        r = await post(c, "check", edited, version, csrf)
        assert marks(r.text) == []
        assert "1 item moved (tea to day 1 16:00), 1 removed (evening)" in r.text
        await c.get("/lang/zh")
        zh = (await post(c, "check", edited, version, csrf)).text
        assert (
            "没有错误。 保存后会改变：" in zh
            and "tea → 第 1 天 16:00" in zh
            and "现在保存并立即生效吗？" in zh
        )
    assert h.run.plan[1].item_id == "tea" and len(h.run.plan) == 3  # nothing live yet


async def test_an_invalid_playbook_is_never_saved_over_the_running_one(harness, tmp_path):
    h, app = await editor_over(harness, tmp_path)
    path = tmp_path / "playbook.yaml"
    before, plan = path.read_bytes(), list(h.run.plan)
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        r = await post(c, "save", text.replace('at: "15:00"', 'at: "25:00"'), version, csrf)
        assert r.status_code == 422 and "Not saved: the playbook has errors" in r.text
        assert marks(r.text)[0][:2] == ("8", "error")
    assert path.read_bytes() == before and h.run.plan == plan
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    await h.until("day 1 23:00")
    await h.settle()
    assert posts(h, "下午茶") == ["01 15:00:00"]


async def test_a_valid_save_goes_live_and_the_moved_item_fires_at_its_new_time(harness, tmp_path):
    h, app = await editor_over(harness, tmp_path)
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        r = await post(c, "save", text.replace('at: "15:00"', 'at: "16:00"'), version, csrf)
        assert r.status_code == 200, r.text
        assert "Saved; the edit is live." in r.text and "1 item moved (tea to day 1 16:00)" in r.text
        new_version = re.search(r'data-version="([0-9a-f]+)"', r.text)
        assert new_version and new_version[1] != version
        again, now_version, _ = await opened(c)
        assert 'at: "16:00"' in again and now_version == new_version[1]
    assert 'at: "16:00"' in (tmp_path / "playbook.yaml").read_text(encoding="utf-8")
    await h.until("day 1 23:59")
    await h.settle()
    assert posts(h, "下午茶") == ["01 16:00:00"]
    assert any("tea → 第 1 天 16:00" in m for m in told(h))  # the operators told in WeChat too


async def test_the_second_of_two_saves_from_one_version_is_told_the_difference(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    path = tmp_path / "playbook.yaml"
    async with client_of(app) as first, client_of(app, "10.0.0.2") as second:
        await log_in(first)
        await log_in(second)
        text, version, csrf1 = await opened(first)
        _, same_version, csrf2 = await opened(second)
        assert same_version == version
        mine = text.replace("下午茶", "下午茶时间")
        theirs = text.replace("晚上好", "晚安")
        assert (await post(first, "save", mine, version, csrf1)).status_code == 200
        r = await post(second, "save", theirs, version, csrf2)
        assert r.status_code == 409 and "someone else saved this playbook" in r.text
        diff = unescape(r.text)
        assert '-  - {id: tea, day: 1, at: "15:00", post: "下午茶时间"}' in diff
        assert '+  - {id: tea, day: 1, at: "15:00", post: "下午茶"}' in diff
        assert '+  - {id: evening, day: 1, at: "20:00", post: "晚安"}' in diff
        assert "下午茶时间" in path.read_text(encoding="utf-8")  # the first save stands
        # Nothing lost: merged by hand, saved on top of the version just shown.
        merged = mine.replace("晚上好", "晚安")
        newer = re.search(r'data-version="([0-9a-f]+)"', r.text)
        assert newer
        ok = await post(second, "save", merged, newer[1], csrf2)
        assert ok.status_code == 200 and "Saved; the edit is live." in ok.text
    saved = path.read_text(encoding="utf-8")
    assert "下午茶时间" in saved and "晚安" in saved


async def test_a_5_mb_post_is_refused_and_nothing_is_read_or_saved(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    path = tmp_path / "playbook.yaml"
    before = path.read_bytes()
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        huge = text + "# " + "x" * 5_000_000 + "\n"
        r = await post(c, "save", huge, version, csrf)
        assert r.status_code == 413 and "too big to save here (over 1 MB)" in r.text
        # Under the wire's limit but over a playbook's: refused all the same.
        chinese = text + "# " + "好" * 400_000 + "\n"
        assert (await post(c, "save", chinese, version, csrf)).status_code == 413
    assert path.read_bytes() == before


async def test_stale_forms_no_session_other_cohorts_and_paths_in_the_request_are_refused(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    path, config = tmp_path / "playbook.yaml", tmp_path / "config.yaml"
    before, config_before = path.read_bytes(), config.read_bytes()
    async with client_of(app) as c:
        assert (await c.get(EDITOR)).status_code == 303
        assert (await c.post(f"{EDITOR}/save", data={"text": "name: x"})).status_code == 401
        assert (await c.post(f"{EDITOR}/check", data={"text": "name: x"})).status_code == 401
        await log_in(c)
        text, version, csrf = await opened(c)
        edited = text.replace("下午茶", "下午茶时间")
        for forged in ("", "forged"):
            r = await c.post(f"{EDITOR}/save", data={"csrf": forged, "version": version, "text": edited})
            assert r.status_code == 403
        # The file is the cohort's, whatever the request names.
        r = await c.post(
            f"{EDITOR}/save?path=../config.yaml",
            data={
                "csrf": csrf,
                "version": version,
                "text": edited,
                "path": str(config),
                "file": "../config.yaml",
            },
        )
        assert r.status_code == 200 and "Saved" in r.text
        assert (await c.get("/cohort/elsewhere/playbook")).status_code == 404
    assert config.read_bytes() == config_before and path.read_bytes() != before
    async with client_of(app, "10.0.0.3") as c:
        await log_in(c, "bob")  # an operator of another cohort only
        assert (await c.get(EDITOR)).status_code == 404
        assert (await c.post(f"{EDITOR}/check", data={"text": "x"})).status_code == 404


async def test_the_text_is_escaped_everywhere_it_is_shown(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        evil = text.replace('post: "下午茶"', 'post: "</textarea><script>alert(1)</script>"') + "oops: [\n"
        for what in ("check", "save"):
            r = await c.post(f"{EDITOR}/{what}", data={"csrf": csrf, "version": version, "text": evil})
            assert "<script>alert(1)" not in r.text and "&lt;script&gt;alert(1)" in r.text


async def test_a_save_the_bot_does_not_take_is_undone_on_disk(harness, tmp_path):
    """The playbook is valid but the config around it no longer is: the live edit keeps the
    last good version, and so does the file."""
    h, app = await editor_over(harness, tmp_path)
    path = tmp_path / "playbook.yaml"
    before, plan = path.read_bytes(), list(h.run.plan)
    (tmp_path / "config.yaml").write_text("timezone: [\n", encoding="utf-8")
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        r = await post(c, "save", text.replace('at: "15:00"', 'at: "16:00"'), version, csrf)
        assert r.status_code == 422 and "the bot did not take this version" in r.text
        assert re.search(r'data-version="([0-9a-f]+)"', r.text) is None  # still the old version
    assert path.read_bytes() == before and h.run.plan == plan


async def test_a_plain_form_post_saves_lf_lines_and_a_deleted_file_can_be_written_again(harness, tmp_path):
    _h, app = await editor_over(harness, tmp_path)
    path = tmp_path / "playbook.yaml"
    async with client_of(app) as c:
        await log_in(c)
        text, version, csrf = await opened(c)
        crlf = text.replace('at: "15:00"', 'at: "16:00"').replace(
            "\n", "\r\n"
        )  # as a browser posts a textarea
        r = await c.post(f"{EDITOR}/save", data={"csrf": csrf, "version": version, "text": crlf})
        assert r.status_code == 200 and "<textarea" in r.text and "Saved; the edit is live." in r.text
        assert b"\r" not in path.read_bytes()
        path.unlink()
        empty, gone_version, _ = await opened(c)
        assert empty == ""
        r = await post(c, "save", text, gone_version, csrf)
        assert r.status_code == 200 and "1 item moved (tea to day 1 15:00)" in r.text
    assert path.read_text(encoding="utf-8") == text
