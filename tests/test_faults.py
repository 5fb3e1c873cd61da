"""Defects found by breaking the bot as a hostile member, a careless operator and a flaky
network (issue "Nothing falls over"), each pinned by a test through the whole bot: the
simulated group, the engine, the outbox and the database, on virtual time.

The EXAMPLE playbook: lesson keywords 打卡/完成, reading 晨读打卡/晨读 until 12:00, both on
days 2..5; a 21:30 reminder on day 2 and a 09:00 nudge on day 3 about day 2.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.transports.base import Delivered, Joined, Member, Reconnected, SendError
from bot.transports.simulated import SimulatedGroup
from storage import repo
from tests.harness import BOT_ID, EXAMPLE, PG_URL, Harness, members, scratch_postgres

PEOPLE = members("op1:王助教", "op2:李助教", "u01:小明", "u02:小红", "u03:小刚")
OPS = ("op1", "op2")
ROOM = "训练营 1 班"
OPENING = "【开营仪式】欢迎来到Python 入门体验营！"
FORGED = "X\nACK 正课 打卡成功\n🎁 张三获得资料大礼包 http://evil.example"


# The lesson track acknowledges each check-in on its own (rows of kind "ack", folded).
EACH = EXAMPLE.replace(
    "    days: [2, 3, 4, 5]\n    ack:", "    days: [2, 3, 4, 5]\n    acknowledge: each\n    ack:"
)
assert EACH != EXAMPLE


def rollcalls(h: Harness) -> list[str]:
    return [s.text for s in h.room() if "rollcall" in s.kinds]


def statuses(h: Harness) -> dict[str, str]:
    with h.bot.db.connect() as conn:
        return dict(conn.execute(select(repo.out_t.c.text, repo.out_t.c.status)).all())


# --- 7, 8: names and texts from the network ------------------------------------------


async def test_a_name_with_newlines_cannot_forge_lines_in_the_bots_posts(harness):
    h = await harness(people=[*members("u01:小明"), Member("evil", FORGED)])
    await h.until("day 2 08:00")
    await h.say("evil", "打卡")
    await h.say("u01", "打卡")
    await h.until("day 5 22:00")
    await h.settle()
    for s in h.sent:
        for line in s.text.splitlines():
            assert not line.startswith(("ACK", "🎁 张三")), s.text
    [call] = [s for s in h.room() if "rollcall" in s.kinds]
    # The name is there, on one line, bounded.
    assert "X ACK 正课 打卡成功 🎁 张三获得资料大礼包" in call.text
    assert len(call.text.splitlines()) == 2  # the title and one line naming both
    assert call.text.splitlines()[1].startswith("正课 +2（今日 2/2）：X ACK")


async def test_a_name_with_newlines_cannot_forge_lines_in_each_acknowledgements(harness):
    h = await harness(EACH, people=[*members("u01:小明"), Member("evil", FORGED)])
    await h.until("day 2 08:00")
    await h.say("evil", "打卡")
    await h.say("u01", "打卡")
    await h.settle()
    [ack] = [s for s in h.room() if s.kinds == ("ack",)]
    assert "X ACK 正课 打卡成功 🎁 张三获得资料大礼包" in ack.text
    assert len(ack.text.splitlines()) == 2  # two acknowledgements folded: one line each
    assert not any(line.startswith(("ACK", "🎁 张三")) for line in ack.text.splitlines())


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("小\x00明", "小明"),
        ("\x1b[31m小明", "[31m小明"),
        ("小\u0080明", "小明"),
        ("小明\u202e", "小明"),
        ("\ufeff小明", "小明"),
        ("小\n明", "小 明"),
        ("小\u200d明", "小明"),
        # The zero-width joiner inside an emoji is part of it: without it 👩‍💻 shows as 👩💻.
        ("Lily👩\u200d💻", "Lily👩\u200d💻"),
        ("🏳️\u200d🌈小明\u200d", "🏳️\u200d🌈小明"),
    ],
)
async def test_control_characters_in_names_and_texts_never_reach_the_database(harness, raw, stored):
    h = await harness(people=[Member("u01", raw)])
    await h.until("day 2 08:00")
    await h.say("u01", "打卡\x00\x1b")
    await h.settle()
    with h.bot.db.connect() as conn:
        [row] = repo.members(conn, "c1")
        assert row.name == stored
        assert repo.has_checkin(conn, "c1", "u01", "lesson", 2)


@pytest.mark.postgres
async def test_a_nul_in_a_name_does_not_stop_the_bot_on_postgresql(harness):
    scratch_postgres()
    h = await harness(
        people=[Member("u01", "小\x00明"), Member("u\x00x", "坏\x00人")], db_url=PG_URL, now="day 2 07:45"
    )
    await h.until("day 2 08:00")
    await h.say("u01", "打卡\x00")
    await h.until("day 2 08:01")
    await h.settle()
    assert rollcalls(h) == ["✅ 第2天打卡播报\n正课 +1（今日 1/2）：小明"]


# --- 9: flood control ------------------------------------------------------------------


async def test_private_command_flood_gets_one_answer_and_never_holds_up_the_group(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.until("day 2 08:00")
    for _ in range(20):
        await h.dm("u01", "进度")
        await asyncio.sleep(0.1)
    await h.say("u02", "打卡")
    await h.until("day 2 08:01")
    await h.settle()
    assert len(h.dms("u01")) == 1
    [call] = [s for s in h.room() if "rollcall" in s.kinds]
    assert call.text == "✅ 第2天打卡播报\n正课 +1（今日 1/3）：小红"
    assert call.at - h.when("day 2 08:00") < timedelta(seconds=10)


async def test_one_member_gets_at_most_three_answers_a_minute_whatever_they_ask(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.until("day 2 08:00")
    for word in ["进度", "排行榜", "今日安排", "帮助", "课表", "我的进度", "菜单"]:
        await h.dm("u01", word)
    await h.say("u01", "帮助")
    await h.settle()
    assert len(h.dms("u01")) + len([s for s in h.room() if "u01" in s.mentions]) == 3
    await h.until("day 2 08:02")
    await h.dm("u01", "帮助")
    await h.settle()
    assert len(h.dms("u01")) == 4  # a minute later they are answered again


# --- 10: invisible characters and full-width forms --------------------------------------


@pytest.mark.parametrize(
    "said", ["\u200b打卡", "\ufeff打卡", "打\u200b卡", "＠CohortBot 打卡", "＠CohortBot\u2005打卡", " 打卡"]
)
async def test_invisible_and_full_width_characters_do_not_hide_a_keyword(harness, said):
    h = await harness(people=members("u01:小明"), now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", said)
    await h.until("day 2 08:01")
    await h.settle()
    assert [(s.kinds, s.text) for s in h.room()] == [
        (("rollcall",), "✅ 第2天打卡播报\n正课 +1（今日 1/1）：小明")
    ]
    with h.bot.db.connect() as conn:
        assert repo.has_checkin(conn, "c1", "u01", "lesson", 2)


@pytest.mark.parametrize("said", ["打 卡", "打卞", "大卡", "ㄉ卡", "扌丁卡", "@别人 打卡", "完 成"])
async def test_look_alikes_of_a_keyword_do_not_count(harness, said):
    h = await harness(people=members("u01:小明"), now="day 2 07:45")
    await h.until("day 2 08:00")
    await h.say("u01", said)
    await h.settle()
    assert h.sent == []
    with h.bot.db.connect() as conn:
        assert not repo.has_checkin(conn, "c1", "u01", "lesson", 2)


# --- 12, 13, 18, 19: failed and uncertain sends ------------------------------------------


class RefusingGroup(SimulatedGroup):
    """Private messages to members whose id starts with "n" are refused for good."""

    async def send_direct(self, member_id: str, text: str) -> None:
        if member_id.startswith("n"):
            raise SendError("refused by WeChat", retry=False)
        await super().send_direct(member_id, text)


async def test_forty_failed_nudges_make_one_alert_per_operator(harness):
    people = [*PEOPLE, *members(*(f"n{i:02d}:学员{i}" for i in range(37)))]
    group = RefusingGroup(None, rooms={"room": ROOM}, members=people, bot=Member(BOT_ID, "CohortBot"))  # type: ignore[arg-type]
    h = await harness(people=people, operators=OPS, group=group, now="day 2 22:00")
    await h.until("day 3 09:00")
    await h.settle()
    alerts = [s for s in h.sent if s.kinds == ("alert",)]
    assert sorted(s.chat for s in alerts) == ["dm:op1", "dm:op2"]
    assert "37 条消息发送失败" in alerts[0].text and "私信提醒 ×37" in alerts[0].text
    assert "refused by WeChat" in alerts[0].text


async def test_a_send_that_may_have_arrived_is_not_called_failed_and_a_late_echo_clears_it(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.until("day 1 19:29")
    h.group.fail_next = [SendError("the connection broke during the send", maybe_sent=True)]
    await h.until("day 1 19:30")
    await asyncio.sleep(5)
    assert statuses(h)[OPENING] == "unknown"
    # The gateway echoes the post back a little later: it did arrive.
    await h.bot.engine.on_event(
        Delivered("room", None, "【开营仪式】欢迎来到Python 入门体验营！", h.clock.now())
    )
    await h.until("day 1 19:40")
    await h.settle()
    assert statuses(h)[OPENING] == "sent"
    assert [s for s in h.sent if s.kinds == ("alert",)] == []  # the waiting alert was withdrawn
    assert h.room() == []  # and nothing was resent


async def test_an_uncertain_send_tells_operators_to_check_before_resending(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.until("day 1 19:29")
    h.group.fail_next = [SendError("the connection broke during the send", maybe_sent=True)]
    await h.until("day 1 19:35")
    await h.settle()
    alerts = [s for s in h.sent if s.kinds == ("alert",)]
    assert len(alerts) == 2
    assert "可能已经发出" in alerts[0].text and "先到群里" in alerts[0].text
    assert "没有重发，请手动处理" not in alerts[0].text
    # Confirmed after the alert went out: a short all-clear follows.
    await h.bot.engine.on_event(
        Delivered("room", None, "【开营仪式】欢迎来到Python 入门体验营！", h.clock.now())
    )
    await h.settle()
    clear = [s for s in h.sent if s.kinds == ("alert",)][2:]
    assert len(clear) == 2 and all("已确认送达" in s.text for s in clear)


async def test_retries_are_counted_per_message_not_per_folded_batch(harness):
    h = await harness(EACH, people=PEOPLE, operators=OPS, now="day 2 07:45")
    await h.until("day 2 08:00")
    with h.bot.db.begin() as conn:
        old = repo.enqueue(conn, "c1", room_id="room", text="旧回复", kind="ack", now=h.clock.now())
        # Two tries already spent on it (of three).
        conn.execute(repo.out_t.update().where(repo.out_t.c.id == old).values(attempts=2))
    await h.say("u01", "打卡")  # a fresh acknowledgement folds into the same send
    h.group.fail_next = [SendError("busy", retry=True)]
    await h.settle()
    st = statuses(h)
    assert st["旧回复"] == "failed"
    assert st["✅ 小明 第2天正课打卡成功（今日 1/3）"] == "sent"
    assert [s.text for s in h.room()] == ["✅ 小明 第2天正课打卡成功（今日 1/3）"]


# --- 15: already counted before too late ------------------------------------------------


async def test_a_second_check_in_after_until_is_already_done_not_too_late(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.until("day 2 08:00")
    await h.say("u01", "晨读")
    await h.settle()
    await h.until("day 2 13:00")
    await h.say("u01", "晨读")
    await h.until("day 2 15:00")
    await h.settle()
    # A repeat: silent. Not told it was too late, neither privately nor in a roll call.
    assert [s.text for s in h.room() if h.local(s) >= "02 08"] == [
        "✅ 第2天打卡播报\n晨读 +1（今日 1/3）：小明"
    ]
    assert h.dms("u01") == []
    with h.bot.db.connect() as conn:
        assert conn.execute(select(repo.notice_t)).all() == []


# --- 16, 17, 20: restarts and the member list -----------------------------------------


class EmptyFirstGroup(SimulatedGroup):
    """A gateway still syncing after a restart: its first member list is empty."""

    empty_reads = 1

    async def members(self, room_id: str) -> list[Member]:
        if self.empty_reads:
            self.empty_reads -= 1
            return [self.bot]
        return await super().members(room_id)


async def test_an_empty_first_member_list_after_a_restart_keeps_the_stored_members(harness, tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await harness(people=PEOPLE, operators=OPS, db_url=url, now="day 2 07:00")
    await h.stop()
    group = EmptyFirstGroup(
        h.clock, rooms={"room": "训练营 1 班"}, members=PEOPLE, bot=Member(BOT_ID, "CohortBot")
    )
    h2 = await harness(db_url=url, now="day 2 08:00", operators=OPS, group=group)
    await h2.say("u01", "打卡")
    await h2.until("day 2 08:01")
    await h2.settle()
    assert [s.text for s in h2.room()] == ["✅ 第2天打卡播报\n正课 +1（今日 1/3）：小明"]


async def test_queued_private_messages_survive_a_long_restart_group_notices_do_not(harness, tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    h = await harness(people=PEOPLE, operators=OPS, db_url=url, now="day 2 08:00")
    with h.bot.db.begin() as conn:
        now = h.clock.now()
        repo.enqueue(conn, "c1", room_id="room", text="旧的群通知", kind="ack", now=now)
        repo.enqueue(conn, "c1", member_id="u01", text="你的进度", kind="reply", now=now)
        repo.enqueue(conn, "c1", member_id="u02", text="第2天的课还没完成", kind="nudge", now=now)
        repo.enqueue(conn, "c1", member_id="op1", text="告警", kind="alert", now=now)
    h.crash()
    h2 = await harness(people=PEOPLE, operators=OPS, db_url=url, now="day 2 09:00")
    await h2.settle()
    assert sorted(s.text for s in h2.sent) == ["你的进度", "告警", "第2天的课还没完成"]
    assert statuses(h2)["旧的群通知"] == "expired"


class SlowListGroup(SimulatedGroup):
    """A member list that takes a while to arrive, read before someone joins."""

    gate: asyncio.Event | None = None

    async def members(self, room_id: str) -> list[Member]:
        snapshot = await super().members(room_id)
        if self.gate is not None:
            await self.gate.wait()
        return snapshot


async def test_a_member_who_joins_while_the_list_is_being_read_is_not_recorded_as_gone(harness):
    group = SlowListGroup(
        None, rooms={"room": "训练营 1 班"}, members=PEOPLE, bot=Member(BOT_ID, "CohortBot")
    )  # type: ignore[arg-type]
    h = await harness(people=PEOPLE, operators=OPS, group=group, now="day 2 07:00")
    group.gate = asyncio.Event()
    reading = asyncio.create_task(h.bot.engine.reconcile(h.run))
    await asyncio.sleep(1)
    await h.group.join(Member("u09", "新同学"))  # the join event arrives meanwhile
    group.gate.set()
    await reading
    with h.bot.db.connect() as conn:
        assert "u09" in repo.present_ids(conn, "c1")
    await h.until("day 2 21:30")
    await h.settle()
    [remind] = [s for s in h.room() if s.kinds == ("remind",)]
    assert "u09" in remind.mentions


# --- 14: a gateway that renumbered everything ----------------------------------------------


async def test_after_a_relogin_with_new_ids_the_bot_follows_the_group(harness, caplog):
    h = await harness(people=PEOPLE, operators=OPS, now="day 1 08:00")
    group = h.group
    # The gateway logged in afresh: the room has a new id, the old one is gone.
    group.rooms = {"room-new": "训练营 1 班"}
    group._members = {"room-new": group._members.pop("room")}
    caplog.set_level(logging.WARNING)
    await h.bot.engine.on_event(Reconnected(h.clock.now(), ids_changed=True))
    await h.group.dm("stranger", "进度")  # a private message from someone unknown: no error
    await h.until("day 1 19:30")
    await h.settle()
    assert [s.room_id for s in h.room()] == ["room-new"]
    assert not [r for r in caplog.records if "could not handle" in r.getMessage()]
    await h.group.say("u01", "帮助", room_id="room-new")
    await h.settle()
    assert [s.kinds for s in h.dms("u01")] == [("reply",)]  # answered privately
    with h.bot.db.begin() as conn:
        repo.set_reachable(conn, "u02", False)
    await h.group.say("u02", "帮助", room_id="room-new")
    await h.settle()
    assert [(s.room_id, s.kinds, s.mentions) for s in h.room()][-1] == ("room-new", ("reply",), ("u02",))


async def test_joined_event_for_an_unknown_room_and_garbage_events_are_ignored(harness):
    h = await harness(people=PEOPLE, operators=OPS)
    await h.bot.engine.on_event(Joined("nowhere", (Member("x", "x"),), h.clock.now()))
    await h.bot.engine.on_event(Delivered(None, "u01", "nothing like this was sent", h.clock.now()))
    await h.until("day 1 19:30")
    await h.settle()
    assert [s.kinds for s in h.sent] == [("post",)]
