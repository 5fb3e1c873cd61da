"""The Wechaty adapter's own logic, on virtual time with a fake puppet: the reconnection
back-off, sends of unknown outcome and their late confirmation, logins after the first,
and what crosses the boundary from the network (texts and names cleaned). The same paths
are driven through the real gateway in tests/test_gateway.py."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from grpclib.const import Status

from bot.transports import wechaty_compat as wx
from bot.transports.base import Delivered, Event, Incoming, Reconnected, SendError
from bot.transports.wechaty import (
    AT_SEPARATOR,
    NOTICE_WINDOW,
    UNSURE_FOR,
    UNSURE_MAX,
    WechatyTransport,
    _Link,
    _NotFriend,
    retry_delay,
)

ROOM = "r1@chatroom"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return NOW


class FakePuppet:
    """Answers like PuppetService; message_send_text hangs while ``hold`` is clear."""

    channel = None

    def __init__(self) -> None:
        self.hold = asyncio.Event()
        self.hold.set()
        self.sent: list[tuple[str, str, list[str] | None]] = []
        self.messages: dict[str, Any] = {}
        self.contacts: dict[str, str] = {"u1": "小明"}
        self.members: dict[str, tuple[str, str]] = {"u1": ("小明", "")}
        self.fail_payloads = False

    async def message_send_text(
        self, conversation_id: str, text: str, mention_ids: list[str] | None = None
    ) -> str:
        self.sent.append((conversation_id, text, mention_ids))
        await self.hold.wait()
        return f"m{len(self.sent)}"

    async def message_payload(self, message_id: str) -> Any:
        if self.fail_payloads:
            raise wx.GRPCError(Status.NOT_FOUND, "no such message")
        return self.messages[message_id]

    async def contact_payload(self, contact_id: str) -> Any:
        return SimpleNamespace(name=self.contacts.get(contact_id, ""))

    async def room_member_payload(self, room_id: str, member_id: str) -> Any:
        name, alias = self.members.get(member_id, ("", ""))
        return SimpleNamespace(name=name, room_alias=alias)

    async def room_members(self, room_id: str) -> list[str]:
        return list(self.members)

    async def room_payload_dirty(self, room_id: str) -> None:
        return None

    async def room_member_payload_dirty(self, room_id: str) -> None:
        return None


def text_message(sender: str, text: str, room_id: str = ROOM, to_id: str = "") -> Any:
    return SimpleNamespace(
        from_id=sender, room_id=room_id, to_id=to_id, text=text, type=wx.TEXT, mention_ids=[], timestamp=0
    )


def connected(bot_id: str = "bot", **options: Any) -> tuple[WechatyTransport, FakePuppet, _Link]:
    transport = WechatyTransport("127.0.0.1:1", "t", FixedClock(), **options)
    puppet = FakePuppet()
    link = _Link(puppet)
    transport._link, transport._puppet = link, puppet
    transport._on_login(link, SimpleNamespace(contact_id=bot_id))
    return transport, puppet, link


def queued(transport: WechatyTransport) -> list[tuple[str, Any, int]]:
    items = []
    while not transport._queue.empty():
        items.append(transport._queue.get_nowait())
    return items


async def next_event(transport: WechatyTransport) -> Event | None:
    kind, payload, generation = transport._queue.get_nowait()
    return await transport._fetch(kind, payload, generation)


# --- the reconnection back-off ------------------------------------------------------


def test_retry_delay_is_a_second_at_first_then_grows_to_the_cap() -> None:
    assert [retry_delay(t, 1.0, fast_for=30, max_backoff=60) for t in (0, 5, 29.9)] == [1.0, 1.0, 1.0]
    delays, delay = [], 1.0
    for _ in range(7):
        delay = retry_delay(40, delay, fast_for=30, max_backoff=60)
        delays.append(delay)
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]


async def test_after_a_connection_that_was_up_the_next_attempt_is_a_second_later() -> None:
    """Seen: the gateway back after a long outage, the back-off grown to its cap; the next
    stall then waited the old, long delay before the first attempt (offline 11 s after the
    gateway came back)."""
    transport = WechatyTransport("127.0.0.1:1", "t", FixedClock(), fast_retry_for=30, max_backoff=60)
    loop = asyncio.get_running_loop()
    script = ["up"] + ["down"] * 34 + ["up", "down", "down", "up"]
    attempts: list[float] = []
    finished = asyncio.Event()

    async def connect_once() -> str:
        attempts.append(loop.time())
        if not script:
            finished.set()
            await asyncio.Event().wait()
        transport._link = _Link(None, up=script.pop(0) == "up")
        return "scripted"

    transport._connect_once = connect_once  # type: ignore[method-assign]
    task = asyncio.create_task(transport._supervise())
    await finished.wait()
    task.cancel()
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(attempts)]
    # The first outage: every second for 30 s, then 2, 4, 8 ... up to the cap.
    assert gaps[:35] == [1.0] * 30 + [2.0, 4.0, 8.0, 16.0, 32.0]
    # Up again, then dropped: one second, not the 60 s the back-off had reached; and each
    # new outage starts again at one second.
    assert gaps[35:] == [1.0, 1.0, 1.0, 1.0]


# --- sends of unknown outcome -------------------------------------------------------


async def test_a_send_cut_mid_flight_is_maybe_sent_and_its_echo_delivers_it() -> None:
    transport, puppet, _ = connected(send_timeout=5)
    puppet.hold.clear()  # the gateway froze
    with pytest.raises(SendError) as cut:
        await transport.send_room(ROOM, "【开课】第2天", ["u1"])
    assert cut.value.maybe_sent and not cut.value.retry
    [(conversation, sent, mentions)] = puppet.sent
    assert conversation == ROOM
    assert sent == f"@小明{AT_SEPARATOR}【开课】第2天" and mentions == ["u1"]
    # It resumes; its echo comes back with the @-prefix: delivered, with the caller's text.
    puppet.messages["e1"] = text_message("bot", sent)
    event = await transport._convert("message", SimpleNamespace(message_id="e1"))
    assert event == Delivered(ROOM, None, "【开课】第2天", NOW)
    # Once only.
    puppet.messages["e2"] = text_message("bot", sent)
    assert await transport._convert("message", SimpleNamespace(message_id="e2")) is None


async def test_a_direct_send_in_doubt_matches_its_echo_by_listener() -> None:
    transport, puppet, _ = connected(send_timeout=5)
    puppet.hold.clear()
    with pytest.raises(SendError, match="may have arrived"):
        await transport.send_direct("u1", "小明，今天的课还没完成哦")
    puppet.messages["other"] = text_message("bot", "小明，今天的课还没完成哦", room_id="", to_id="u2")
    assert await transport._convert("message", SimpleNamespace(message_id="other")) is None  # another chat
    puppet.messages["e1"] = text_message("bot", "小明，今天的课还没完成哦", room_id="", to_id="u1")
    event = await transport._convert("message", SimpleNamespace(message_id="e1"))
    assert event == Delivered(None, "u1", "小明，今天的课还没完成哦", NOW)


async def test_a_send_whose_call_completes_late_is_delivered() -> None:
    transport, puppet, link = connected(send_timeout=30)
    puppet.hold.clear()
    send = asyncio.create_task(transport.send_room(ROOM, "奖励已发放"))
    await asyncio.sleep(1)
    transport._close()  # the watchdog gave the connection up: the send is released at once
    with pytest.raises(SendError) as cut:
        await send
    assert cut.value.maybe_sent and "dropped" in str(cut.value)
    assert link.dropped.is_set() and transport._lingering  # the call is still under way
    puppet.hold.set()  # the gateway resumes and answers the call
    await asyncio.sleep(0.1)
    [(kind, unsure, generation)] = queued(transport)
    assert kind == "delivered"
    assert await transport._fetch(kind, unsure, generation) == Delivered(ROOM, None, "奖励已发放", NOW)
    assert not transport._lingering  # and the old connection was closed


async def test_an_echo_seen_while_the_send_was_still_waiting_settles_it() -> None:
    transport, puppet, _ = connected(send_timeout=5)
    puppet.hold.clear()
    send = asyncio.create_task(transport.send_direct("u1", "进度：1/8"))
    await asyncio.sleep(1)
    puppet.messages["e1"] = text_message("bot", "进度：1/8", room_id="", to_id="u1")
    assert await transport._convert("message", SimpleNamespace(message_id="e1")) is None
    with pytest.raises(SendError):
        await send
    assert await next_event(transport) == Delivered(None, "u1", "进度：1/8", NOW)


async def test_sends_in_doubt_are_remembered_ten_minutes_and_at_most_a_hundred() -> None:
    transport, puppet, _ = connected(send_timeout=1)
    puppet.hold.clear()
    for i in range(UNSURE_MAX + 20):
        with pytest.raises(SendError):
            await transport.send_direct("u1", f"消息 {i}")
    assert len(transport._unsure) == UNSURE_MAX
    puppet.messages["old"] = text_message("bot", "消息 0", room_id="", to_id="u1")
    assert await transport._convert("message", SimpleNamespace(message_id="old")) is None  # forgotten
    await asyncio.sleep(UNSURE_FOR + 1)
    puppet.messages["late"] = text_message("bot", "消息 119", room_id="", to_id="u1")
    assert await transport._convert("message", SimpleNamespace(message_id="late")) is None
    assert not transport._unsure


async def test_a_refused_send_is_retried_not_maybe_sent() -> None:
    transport, puppet, _ = connected()

    async def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise wx.GRPCError(Status.INTERNAL, "操作过于频繁")

    puppet.message_send_text = refuse  # type: ignore[method-assign]
    with pytest.raises(SendError) as refused:
        await transport.send_direct("u1", "hi")
    assert refused.value.retry and not refused.value.maybe_sent
    assert not transport._unsure


# --- logins after the first -----------------------------------------------------------


async def test_a_plain_reconnect_is_reported_and_sends_go_on() -> None:
    transport, _, link = connected("bot")
    assert queued(transport) == []  # the first login is no reconnection
    transport._on_logout(SimpleNamespace(contact_id="bot"))
    assert not transport._ready.is_set()
    transport._on_login(link, SimpleNamespace(contact_id="bot"))
    assert transport._ready.is_set()
    assert [await next_event(transport)] == [Reconnected(NOW, ids_changed=False)]
    transport._on_login(link, SimpleNamespace(contact_id="bot"))  # told twice: nothing new
    assert queued(transport) == []


async def test_a_login_with_a_new_id_clears_the_caches_and_holds_sends_until_handled() -> None:
    transport, _, link = connected("bot")
    await transport.members(ROOM)
    await transport.send_direct("u1", "hi")
    assert transport._names and transport._aliases and transport._messaged
    transport._on_logout(SimpleNamespace(contact_id="bot"))
    transport._on_login(link, SimpleNamespace(contact_id="bot-2"))
    assert transport.bot_id() == "bot-2"
    assert not transport._names and not transport._aliases and not transport._messaged
    assert transport._online.is_set() and not transport._ready.is_set()
    seen: list[tuple[Event, bool]] = []

    async def sink(event: Event) -> None:
        seen.append((event, transport._ready.is_set()))

    transport._events = sink
    consumer = asyncio.create_task(transport._consume())
    await asyncio.sleep(0.1)
    assert seen == [(Reconnected(NOW, ids_changed=True), False)]  # handled before sends resume
    assert transport._ready.is_set()
    consumer.cancel()


async def test_events_from_before_a_renumbering_are_not_retried_for_long() -> None:
    transport, puppet, link = connected("bot")
    transport._queue.put_nowait(("message", SimpleNamespace(message_id="old"), transport._generation))
    old = transport._queue.get_nowait()
    transport._on_login(link, SimpleNamespace(contact_id="bot-2"))
    puppet.fail_payloads = True  # the old message ids are gone
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await transport._fetch(*old) is None
    assert loop.time() - began < 0.5


# --- what crosses the boundary ----------------------------------------------------------


async def test_texts_and_names_from_the_network_are_cleaned() -> None:
    transport, puppet, _ = connected()
    hostile = "坏\x00名字\n【系统】第二行\r\n" + "长" * 60
    puppet.contacts["u9"] = hostile
    puppet.members["u9"] = (hostile, "组\n长\x00")
    puppet.messages["m1"] = text_message("u9", "打\x00卡\u200b")
    event = await transport._convert("message", SimpleNamespace(message_id="m1"))
    assert isinstance(event, Incoming)
    assert event.text == "打卡"
    assert "\n" not in event.sender.name and "\x00" not in event.sender.name
    assert event.sender.alias == "组 长"
    members = {m.id: m for m in await transport.members(ROOM)}
    assert "\n" not in members["u9"].name and len(members["u9"].name) <= 40
    # The @names the adapter writes itself are cleaned too: no line forged in a post.
    await transport.send_room(ROOM, "还没打卡的同学抓紧哦", ["u9"])
    assert puppet.sent[-1][1] == f"@组 长{AT_SEPARATOR}还没打卡的同学抓紧哦"
    transport._aliases.clear()
    puppet.members["u9"] = (hostile, "")
    await transport.send_room(ROOM, "提醒", ["u9"])
    prefix = puppet.sent[-1][1].split(AT_SEPARATOR)[0]
    assert "\n" not in prefix and "\x00" not in prefix and prefix.startswith("@坏名字 【系统】第二行")


# --- members who are not friends ----------------------------------------------------------

NOTICE = "对方开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求，对方验证通过后，才能聊天。"


def notice_message(sender: str, text: str = NOTICE, to_id: str = "bot", kind: Any = None) -> Any:
    """WeChat's notice in a private chat, as a system message (type Unknown) by default."""
    msg = text_message(sender, text, room_id="", to_id=to_id)
    msg.type = wx.MessageType.MESSAGE_TYPE_UNSPECIFIED if kind is None else kind
    return msg


async def converted(transport: WechatyTransport, puppet: FakePuppet, message_id: str, msg: Any) -> Any:
    puppet.messages[message_id] = msg
    return await transport._convert("message", SimpleNamespace(message_id=message_id))


@pytest.mark.parametrize(
    "error",
    [
        "Error: messageSendText(u1): 开启了朋友验证，你还不是他（她）朋友\n    at TestPuppetMock.send",
        "send text msg: u1, its not on your friend list!",
        "u1 is not your friend",
        "对方不是你的好友",
        "contact u1 is NOT FRIEND",
        "需要先通过好友验证",
    ],
)
async def test_a_private_send_refused_for_a_non_friend_is_not_friend_and_not_retried(error: str) -> None:
    transport, puppet, _ = connected()

    async def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise wx.GRPCError(Status.UNKNOWN, error)

    puppet.message_send_text = refuse  # type: ignore[method-assign]
    with pytest.raises(SendError) as refused:
        await transport.send_direct("u1", "小明，这是你的奖励")
    assert refused.value.not_friend and not refused.value.retry and not refused.value.maybe_sent
    assert "u1" in str(refused.value) and "\n" not in str(refused.value)
    assert not transport._unsure


@pytest.mark.parametrize(
    "error", ["操作过于频繁", "2 UNKNOWN: [tid:79161c42] wechat bad request error", "token verify failed"]
)
async def test_other_refusals_and_room_sends_are_not_taken_for_a_non_friend(error: str) -> None:
    transport, puppet, _ = connected()

    async def refuse(*_args: Any, **_kwargs: Any) -> str:
        raise wx.GRPCError(Status.INTERNAL, error)

    puppet.message_send_text = refuse  # type: ignore[method-assign]
    with pytest.raises(SendError) as refused:
        await transport.send_direct("u1", "hi")
    assert not refused.value.not_friend and refused.value.retry

    async def refuse_room(*_args: Any, **_kwargs: Any) -> str:
        raise wx.GRPCError(Status.UNKNOWN, "不是好友")

    puppet.message_send_text = refuse_room  # type: ignore[method-assign]
    with pytest.raises(SendError) as room:
        await transport.send_room(ROOM, "hi")  # a group has no friends to be
    assert not room.value.not_friend


async def test_the_notice_after_an_accepted_private_send_calls_on_not_friend_not_incoming() -> None:
    transport, puppet, _ = connected()
    told: list[str] = []
    seen: list[Event] = []

    async def tell(member_id: str) -> None:
        told.append(member_id)

    async def sink(event: Event) -> None:
        seen.append(event)

    transport.on_not_friend = tell
    transport._events = sink
    await transport.send_direct("u1", "小明，今天的课还没完成哦")  # the gateway accepts it
    puppet.messages["n1"] = notice_message("u1")
    transport._queue.put_nowait(("message", SimpleNamespace(message_id="n1"), transport._generation))
    consumer = asyncio.create_task(transport._consume())
    await asyncio.sleep(0.1)
    consumer.cancel()
    assert told == ["u1"] and seen == []
    # A plain function does as well; the member still speaking is a member speaking.
    calls: list[str] = []
    transport.on_not_friend = calls.append
    await transport._tell_not_friend("u1")
    assert calls == ["u1"]
    assert isinstance(
        await converted(transport, puppet, "m2", text_message("u1", "进度", room_id="")), Incoming
    )


@pytest.mark.parametrize(
    "text",
    [
        NOTICE,
        "对方开启了朋友验证，你还不是他(她)朋友。请先发送朋友验证请求，对方验证通过后，才能聊天。",
        '<a href="weixin://findfriend/verifycontact">请先发送朋友验证请求</a>',
        "小明 has enabled Friend Confirmation. You are not his/her friend. Send a friend request first.",
        "Message not sent: 小明 is not your friend yet.",
    ],
)
async def test_the_notice_is_known_in_its_forms_and_types(text: str) -> None:
    transport, puppet, _ = connected()
    await transport.send_direct("u1", "hi")
    for i, kind in enumerate((None, wx.TEXT)):
        event = await converted(transport, puppet, f"n{i}", notice_message("u1", text, kind=kind))
        assert event == _NotFriend("u1")


async def test_a_notice_filed_under_the_account_is_one_but_its_own_texts_are_echoes() -> None:
    transport, puppet, _ = connected()
    await transport.send_direct("u1", "hi")
    # Some puppets file the system message under the account, in the contact's chat.
    assert await converted(transport, puppet, "n1", notice_message("bot", to_id="u1")) == _NotFriend("u1")
    # The account's own text quoting the notice (an operator told privately) is an echo.
    await transport.send_direct("op", f"小明收不到私信：{NOTICE}")
    quoted = text_message("bot", f"小明收不到私信：{NOTICE}", room_id="", to_id="op")
    assert await converted(transport, puppet, "e1", quoted) is None
    # And in a group, the words are only words.
    in_room = text_message("u1", NOTICE)
    assert isinstance(await converted(transport, puppet, "g1", in_room), Incoming)


async def test_a_notice_from_someone_not_messaged_recently_is_dropped() -> None:
    transport, puppet, _ = connected()
    assert await converted(transport, puppet, "n1", notice_message("u2")) is None  # never messaged
    as_text = notice_message("u2", kind=wx.TEXT)
    assert await converted(transport, puppet, "n1t", as_text) is None  # nor an Incoming
    await transport.send_direct("u2", "hi")
    await asyncio.sleep(NOTICE_WINDOW + 1)
    assert await converted(transport, puppet, "n2", notice_message("u2")) is None  # too long ago
    await transport.send_direct("u2", "hi again")
    assert await converted(transport, puppet, "n3", notice_message("u2")) == _NotFriend("u2")


async def test_a_notice_that_beats_the_answer_to_its_send_counts() -> None:
    transport, puppet, _ = connected(send_timeout=30)
    puppet.hold.clear()  # the gateway has not answered the send yet
    send = asyncio.create_task(transport.send_direct("u1", "hi"))
    await asyncio.sleep(0.1)
    assert await converted(transport, puppet, "n1", notice_message("u1")) == _NotFriend("u1")
    puppet.hold.set()
    await send


def test_the_endpoint_splits_into_host_and_port_ipv6_included():
    from bot.transports.wechaty import split_endpoint

    assert split_endpoint("127.0.0.1:8788") == ("127.0.0.1", 8788)
    assert split_endpoint("localhost:1") == ("localhost", 1)
    assert split_endpoint("[::1]:8788") == ("::1", 8788)
