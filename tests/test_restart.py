"""Restarts on the same database: nothing sent twice, nothing acknowledged forgotten, items
missed while down sent late within the grace window and skipped (and logged) after it."""

import logging

from sqlalchemy import create_engine, select

from storage import repo
from tests.harness import Harness, members

PEOPLE = members("op1:王助教", "u01:小明", "u02:小红", "u03:小刚")


async def start(tmp_path, now: str, **kw) -> Harness:
    return await Harness.start(
        people=PEOPLE, operators=("op1",), now=now, db_url=f"sqlite:///{tmp_path / 'bot.db'}", **kw
    )


async def test_restart_mid_cohort_sends_nothing_twice(tmp_path):
    h = await start(tmp_path, "day 1 00:00")
    await h.until("day 2 08:00")
    await h.say("u01", "晨读打卡")
    await h.until("day 2 20:00")
    await h.say("u02", "打卡")
    await h.until("day 2 20:01")
    await h.settle()
    before = [(s.chat, s.text) for s in h.sent]
    assert ("room", "【开营仪式】欢迎来到Python 入门体验营！") in before
    assert ("room", "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红") in before
    await h.stop()

    # Back up at 21:35: the 21:30 reminder is 5 min late, inside the 10 min grace.
    h2 = await start(tmp_path, "day 2 21:35")
    await h2.until("day 2 23:00")
    await h2.settle()
    assert [h2.local(s) for s in h2.sent] == ["02 21:35:00"]
    remind = h2.sent[0]
    assert remind.kinds == ("remind",)
    assert remind.text == "今天的课还没完成的同学抓紧哦 👇"  # nobody named twice
    assert remind.mentions == ("u01", "u03")  # u02 checked in before the restart; op1 is an operator
    await h2.stop()

    # Once more, at the same minute: everything is already claimed.
    h3 = await start(tmp_path, "day 2 21:36")
    await h3.until("day 2 23:59")
    await h3.settle()
    assert h3.sent == []
    await h3.stop()


async def test_items_missed_beyond_grace_are_skipped_and_logged(tmp_path, caplog):
    h = await start(tmp_path, "day 1 00:00")
    await h.until("day 2 12:00")
    await h.stop()
    caplog.set_level(logging.WARNING)
    # Down from day 2 12:00 to day 3 10:00: the 21:30 reminder and the 09:00 nudge are
    # far past the grace window.
    h2 = await start(tmp_path, "day 3 10:00")
    await h2.until("day 3 12:00")
    await h2.settle()
    assert h2.sent == []
    skipped = [r.getMessage() for r in caplog.records if "grace window" in r.getMessage()]
    assert any("d2-2130-remind-lesson" in m for m in skipped)
    assert any("d3-0900-nudge-lesson" in m for m in skipped)
    with h2.bot.db.connect() as conn:
        claimed = repo.claimed_items(conn, "c1")
    assert claimed["d2-2130-remind-lesson"] == "missed"
    assert claimed["d2-0730-post"] == "done"
    # The later items still run.
    await h2.until("day 5 22:05")
    await h2.settle()
    assert [s.text.splitlines()[0] for s in h2.room()] == ["🏆 晨读排行榜（截至第5天）"]
    await h2.stop()


async def test_acknowledged_checkins_survive_a_restart(tmp_path):
    h = await start(tmp_path, "day 2 07:00")
    for day in (2, 3, 4):
        await h.until(f"day {day} 08:00")
        await h.say("u01", "晨读")
    await h.until("day 4 08:01")
    await h.settle()
    assert [s.text for s in h.room() if "rollcall" in s.kinds] == [
        f"✅ 第{day}天打卡播报\n晨读 +1（今日 1/3）：小明" for day in (2, 3, 4)
    ]
    await h.stop()

    h2 = await start(tmp_path, "day 5 07:59")
    await h2.until("day 5 08:00")
    await h2.say("u01", "晨读")  # the 4th day: the reward is earned now, once
    await h2.say("u01", "晨读")  # and a duplicate
    await h2.until("day 5 10:00")
    await h2.settle()
    assert [(s.text, s.kinds) for s in h2.dms("u01")] == [
        ("恭喜完成 4 天晨读！资料大礼包：https://example.com/pack 提取码 8888", ("reward",))
    ]
    # Days 2..4 are not named again; the duplicate is silent. (The roll call is composed at
    # 08:00:03 and follows the reward's private message by the pacing gap.)
    assert [(h2.local(s), s.text) for s in h2.room()] == [
        ("05 08:00:06", "✅ 第5天打卡播报\n晨读 +1（今日 1/3）：小明\n🎁 解锁资料大礼包：小明")
    ]
    with h2.bot.db.connect() as conn:
        assert repo.member_days(conn, "c1", "u01", "reading") == [2, 3, 4, 5]
    await h2.stop()


async def test_a_send_cut_by_a_crash_is_not_repeated_and_queued_ones_go_out(tmp_path):
    h = await start(tmp_path, "day 1 00:00")
    await h.until("day 2 08:00")
    await h.settle()
    with h.bot.db.begin() as conn:
        now = h.clock.now()
        repo.enqueue(conn, "c1", room_id="room", text="在发送途中崩溃的消息", kind="post", now=now)
        repo.enqueue(conn, "c1", room_id="room", text="排队中的消息", kind="post", now=now)
        first = repo.next_ready(conn, now)
        repo.mark(conn, [first.id], "sending")
    # Crash: the sender never marked it sent. The bot process dies here.
    h.crash()

    h2 = await start(tmp_path, "day 2 08:02")
    await h2.settle()
    assert [s.text for s in h2.room()] == ["排队中的消息"]
    # The operator is told it may have arrived, and to look before resending.
    [alert] = h2.dms("op1")
    assert alert.kinds == ("alert",)
    assert "可能已经发出" in alert.text and "「在发送途中崩溃的消息」" in alert.text
    assert "先到群里" in alert.text
    engine = create_engine(f"sqlite:///{tmp_path / 'bot.db'}")
    with engine.connect() as conn:
        status = dict(conn.execute(select(repo.out_t.c.text, repo.out_t.c.status)).all())
    assert status["在发送途中崩溃的消息"] == "unknown"
    assert status["排队中的消息"] == "sent"
    await h2.stop()


async def test_queued_messages_older_than_grace_expire_on_restart(tmp_path):
    h = await start(tmp_path, "day 2 08:00")
    with h.bot.db.begin() as conn:
        repo.enqueue(conn, "c1", room_id="room", text="旧消息", kind="post", now=h.clock.now())
    h.crash()

    h2 = await start(tmp_path, "day 2 09:00")
    await h2.settle()
    assert "旧消息" not in [s.text for s in h2.sent]
    await h2.stop()
