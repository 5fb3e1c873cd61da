"""Live edits (bot/reload.py): a playbook or config saved while the bot runs is swapped in
without a restart, on virtual time; items already sent are never sent again; an invalid,
deleted or half-written file never replaces the last good version."""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap

import pytest

from bot import config as configs
from bot.reload import Reloader
from storage import repo
from tests.harness import Harness, members

PEOPLE = members("op1:王助教", "u01:小明", "u02:小红")

PLAYBOOK = textwrap.dedent("""\
    name: 直播营
    days: 3
    timezone: Asia/Shanghai
    tracks:
      lesson: {name: 正课, keywords: ["打卡"], days: [1, 2, 3]}
    schedule:
      - {id: morning, day: 1, at: "08:00", post: "早上好"}
      - {id: tea, day: 1, at: "15:00", post: "下午茶"}
      - {id: evening, day: 1, at: "20:00", post: "晚上好"}
""")
CONFIG = textwrap.dedent("""\
    timezone: Asia/Shanghai
    database: sqlite:///bot.db
    operators: [op1]
    transport: {kind: simulated}
    cohorts:
      - {id: c1, playbook: playbook.yaml, room: 训练营 1 班, start: 2026-12-01}
""")


async def live(harness, tmp_path, now: str = "day 1 07:00", playbook: str = PLAYBOOK, config: str = CONFIG):
    (tmp_path / "playbook.yaml").write_text(playbook, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(config, encoding="utf-8")
    loaded = configs.load(tmp_path / "config.yaml", env={})
    h: Harness = await harness(loaded.playbooks["c1"], people=PEOPLE, operators=("op1",), now=now)
    return h, Reloader(h.bot, loaded, env={})


def edit(tmp_path, old: str, new: str, name: str = "playbook.yaml") -> None:
    path = tmp_path / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def posts(h: Harness, text: str) -> list[str]:
    return [h.local(s) for s in h.room() if s.text == text]


def told(h: Harness) -> list[str]:
    return [s.text for s in h.dms("op1")]


async def test_an_item_moved_later_fires_at_its_new_time_once(harness, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    h, reloader = await live(harness, tmp_path)
    edit(tmp_path, 'at: "15:00"', 'at: "16:00"')
    edit(tmp_path, "晚上好", "晚上好呀")
    extra = '  - {id: extra, day: 2, at: "09:00", post: "新的一天"}\n'
    edit(tmp_path, "  - {id: evening", extra + "  - {id: evening")
    done = await reloader.reload()
    assert done is not None and [c.cohort_id for c in done.changes] == ["c1"]
    change = done.changes[0]
    assert [i for i, _ in change.moved] == ["tea"]
    assert (change.added, change.removed, change.changed) == (["extra"], [], ["evening"])
    assert "1 item moved (tea to day 1 16:00), 1 added (extra), the text of evening changed" in caplog.text
    await h.until("day 3 23:59")
    await h.settle()
    assert posts(h, "下午茶") == ["01 16:00:00"]
    assert posts(h, "晚上好呀") == ["01 20:00:00"] and posts(h, "晚上好") == []
    assert posts(h, "新的一天") == ["02 09:00:00"]
    [message] = told(h)
    assert "tea → 第 1 天 16:00" in message and "新增 1 项（extra）" in message
    assert "evening 的内容已修改" in message


async def test_an_item_edited_after_it_was_sent_is_not_sent_again(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    await h.until("day 1 08:30")
    edit(tmp_path, "早上好", "早上好！今天有新安排")
    edit(tmp_path, '{id: morning, day: 1, at: "08:00"', '{id: morning, day: 1, at: "10:00"')
    done = await reloader.reload()
    assert done is not None and done.changes[0].not_resent == [("morning", "done")]
    await h.until("day 3 23:59")
    await h.settle()
    assert posts(h, "早上好") == ["01 08:00:00"]
    assert posts(h, "早上好！今天有新安排") == []
    [message] = told(h)
    assert "morning 已经发出，修改后不会再发" in message


async def test_an_item_without_id_moved_after_it_was_sent_is_not_sent_again(harness, tmp_path):
    """Its id is its day and time: moved, the id changes, but it is the same item."""
    playbook = PLAYBOOK.replace("{id: tea, ", "{")
    h, reloader = await live(harness, tmp_path, playbook=playbook)
    await h.until("day 1 15:30")
    edit(tmp_path, 'at: "15:00"', 'at: "16:00"')
    done = await reloader.reload()
    assert done is not None
    assert done.changes[0].renamed == {"d1-1600-post": "d1-1500-post"}
    assert (done.changes[0].added, done.changes[0].removed) == ([], [])
    await h.until("day 1 23:00")
    await h.settle()
    assert posts(h, "下午茶") == ["01 15:00:00"]
    assert "d1-1600-post 已经发出" in told(h)[0]


async def test_a_new_item_already_past_goes_late_within_grace_and_is_skipped_beyond(
    harness, tmp_path, caplog
):
    h, reloader = await live(harness, tmp_path, now="day 1 09:00")
    await h.settle()
    edit(
        tmp_path,
        "  - {id: tea",
        '  - {id: just-now, day: 1, at: "08:55", post: "刚刚"}\n'
        '  - {id: long-ago, day: 1, at: "08:30", post: "很早"}\n'
        "  - {id: tea",
    )
    caplog.set_level(logging.WARNING)
    done = await reloader.reload()
    assert done is not None
    assert (done.changes[0].late, done.changes[0].skipped) == (["just-now"], ["long-ago"])
    await h.until("day 1 12:00")
    await h.settle()
    assert posts(h, "刚刚") == ["01 09:00:00"]
    assert posts(h, "很早") == []
    assert "long-ago was due at 12-01 08:30 and is past the 0:10:00 grace window; skipped" in caplog.text
    with h.bot.db.connect() as conn:
        assert repo.claimed_items(conn, "c1")["long-ago"] == "missed"
    message = told(h)[0]
    assert "just-now 的时间已过，现在补发" in message and "long-ago 的时间已过去太久" in message


async def test_an_invalid_edit_keeps_the_old_plan_and_tells_the_file_and_line_once(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    plan = list(h.run.plan)
    edit(tmp_path, 'at: "15:00"', 'at: "25:00"')
    assert await reloader.reload() is None
    assert h.run.plan == plan
    edit(tmp_path, "下午茶", "下午茶时间")  # saved again, the same mistake
    assert await reloader.reload() is None
    await h.until("day 1 23:00")
    await h.settle()
    assert posts(h, "下午茶") == ["01 15:00:00"]
    [message] = told(h)  # one message for the mistake, not one per save
    assert f"{tmp_path / 'playbook.yaml'}:8: schedule[1].at: '25:00' is not a time of day" in message
    assert 'write it as "HH:MM"' in message
    # Fixed: the next edit applies, and a new mistake is told again.
    edit(tmp_path, 'at: "25:00"', 'at: "21:00"')
    assert await reloader.reload() is not None
    edit(tmp_path, 'at: "21:00"', 'at: "25:00"')
    assert await reloader.reload() is None
    await h.settle()
    assert len(told(h)) == 3


async def test_a_deleted_playbook_keeps_the_cohort_running(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    (tmp_path / "playbook.yaml").unlink()
    assert await reloader.reload() is None
    await h.until("day 1 23:00")
    await h.settle()
    assert posts(h, "早上好") == ["01 08:00:00"] and posts(h, "下午茶") == ["01 15:00:00"]
    [message] = told(h)
    assert f"no playbook at {tmp_path / 'playbook.yaml'}" in message and "config.yaml:6" in message


async def test_a_half_written_file_never_reaches_the_bot(harness, tmp_path):
    """An editor that truncates and then writes: the first half alone is a valid playbook
    (without its last two items), but it is never swapped in."""
    h, reloader = await live(harness, tmp_path)
    full = PLAYBOOK.replace("下午茶", "下午茶来啦")
    half = full[: full.index("  - {id: tea")]
    path = tmp_path / "playbook.yaml"

    async def save() -> None:
        path.write_text("", encoding="utf-8")
        await asyncio.sleep(0.05)
        path.write_text(half, encoding="utf-8")
        await asyncio.sleep(0.2)
        path.write_text(full, encoding="utf-8")

    saving = asyncio.create_task(save())
    await asyncio.sleep(0.01)
    done = await reloader.reload()
    await saving
    assert done is not None
    assert (done.changes[0].changed, done.changes[0].removed) == (["tea"], [])
    await h.until("day 1 23:00")
    await h.settle()
    assert posts(h, "下午茶来啦") == ["01 15:00:00"] and posts(h, "晚上好") == ["01 20:00:00"]
    assert len(told(h)) == 1  # what changed; never an error about the half


async def test_a_file_saved_by_rename_is_read_whole(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    tmp = tmp_path / ".playbook.yaml.swp"
    tmp.write_text(PLAYBOOK.replace('at: "15:00"', 'at: "15:30"'), encoding="utf-8")
    os.replace(tmp, tmp_path / "playbook.yaml")
    done = await reloader.reload()
    assert done is not None and [i for i, _ in done.changes[0].moved] == ["tea"]
    await h.until("day 1 16:00")
    await h.settle()
    assert posts(h, "下午茶") == ["01 15:30:00"]


async def test_keywords_changed_live(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    edit(tmp_path, 'keywords: ["打卡"]', 'keywords: ["打卡", "交作业"]')
    done = await reloader.reload()
    assert done is not None and done.changes[0].tracks == [("keywords", "lesson")]
    await h.say("u01", "交作业")
    await h.settle()
    with h.bot.db.connect() as conn:
        assert repo.checkins_by_day(conn, "c1") == {("lesson", 1): 1}
    assert "打卡项 lesson 的关键词已修改" in told(h)[0]


async def test_config_edits_apply_live_or_wait_for_a_restart(harness, tmp_path):
    h, reloader = await live(harness, tmp_path)
    (tmp_path / "other.yaml").write_text(PLAYBOOK.replace("下午茶", "另一份剧本的下午茶"), encoding="utf-8")
    edit(tmp_path, "operators: [op1]", "operators: [op1, u02]", "config.yaml")
    edit(tmp_path, "database: sqlite:///bot.db", 'database: sqlite:///b.db\nquiet_hours: off', "config.yaml")
    edit(tmp_path, "playbook: playbook.yaml", "playbook: other.yaml", "config.yaml")
    done = await reloader.reload()
    assert done is not None
    assert done.settings == ["operators", "quiet_hours"]
    assert done.restart == ["database"]
    assert h.bot.engine.settings.operators == {"op1", "u02"}
    assert h.bot.engine.rollcalls.settings.quiet is None
    assert done.changes[0].changed == ["tea"]
    assert reloader.files() == {(tmp_path / "config.yaml").resolve(), (tmp_path / "other.yaml").resolve()}
    await h.until("day 1 16:00")
    await h.settle()
    assert posts(h, "另一份剧本的下午茶") == ["01 15:00:00"]
    for op in ("op1", "u02"):
        texts = [s.text for s in h.dms(op)]
        assert any("配置的修改已生效：operators, quiet_hours" in t for t in texts)
        assert any("要重启机器人后才生效：database" in t for t in texts)
    # Saved again unchanged: nothing is told twice.
    before = len(h.sent)
    edit(tmp_path, "operators: [op1, u02]", "operators: [op1, u02]   # 助教", "config.yaml")
    done = await reloader.reload()
    await h.settle()
    assert done is not None and (done.changes, done.settings) == ([], [])
    assert len(h.sent) == before


@pytest.mark.realtime
async def test_the_watcher_notices_a_save(tmp_path):
    """watchfiles on the real clock: a save of the playbook (by rename, as many editors do)
    asks for a reload; a file next to it that is not ours does not."""
    (tmp_path / "playbook.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    loaded = configs.load(tmp_path / "config.yaml", env={})
    reloader = Reloader(None, loaded, env={})  # type: ignore[arg-type]
    asked = asyncio.Queue[str]()

    async def reload() -> None:
        asked.put_nowait("reload")

    reloader.reload = reload  # type: ignore[method-assign]
    watching = asyncio.create_task(reloader.watch())
    try:
        await asyncio.sleep(0.5)  # the watcher is up
        (tmp_path / "notes.txt").write_text("not a playbook", encoding="utf-8")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asked.get(), 1.0)
        tmp = tmp_path / "playbook.yaml.tmp"
        tmp.write_text(PLAYBOOK.replace("下午茶", "下午茶来啦"), encoding="utf-8")
        os.replace(tmp, tmp_path / "playbook.yaml")
        assert await asyncio.wait_for(asked.get(), 5.0) == "reload"
    finally:
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watching


def test_cohortbot_reload_asks_the_running_bot(tmp_path):
    """`cohortbot reload --config` checks the files, then signals the `cohortbot run` of that
    config (found by the process id file next to its database), which reads them again."""
    import subprocess
    import sys
    import threading
    import time

    (tmp_path / "playbook.yaml").write_text(PLAYBOOK, encoding="utf-8")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(CONFIG, encoding="utf-8")
    reload_cmd = [sys.executable, "-m", "bot.cli", "reload", "--config", str(cfg)]
    idle = subprocess.run(reload_cmd, capture_output=True, text=True, timeout=60)
    assert idle.returncode == 1 and "no cohortbot is running" in idle.stderr, idle.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    log: list[str] = []
    reading = threading.Thread(target=lambda: log.extend(iter(proc.stderr.readline, "")), daemon=True)
    reading.start()

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 30
        while not any(text in line for line in log):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(log)[-3000:]
            time.sleep(0.05)

    try:
        wait_for("for edits")
        assert (tmp_path / "bot.db.pid").read_text().strip() == str(proc.pid)
        # An invalid edit is refused here, and the bot is not asked.
        edit(tmp_path, 'at: "15:00"', 'at: "25:00"')
        bad = subprocess.run(reload_cmd, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 2 and "playbook.yaml:8" in bad.stderr, bad.stderr
        edit(tmp_path, 'at: "25:00"', 'at: "23:00"')
        ok = subprocess.run(reload_cmd, capture_output=True, text=True, timeout=60)
        assert ok.returncode == 0 and f"process {proc.pid}" in ok.stdout, ok.stderr
        wait_for("reload asked for")
        wait_for("1 item moved (tea to day 1 23:00)")
    finally:
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.close()
        proc.wait(timeout=60)
        reading.join(timeout=5)
    assert proc.returncode == 0, "".join(log)[-3000:]
    assert not (tmp_path / "bot.db.pid").exists()
    assert "Traceback" not in "".join(log)
