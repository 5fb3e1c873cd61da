"""An in-process group: what `simulate`, `demo`, interactive `run` and the tests talk to.

It keeps its member list, turns scripted actions into events, and records every send with
the clock's time, exactly as a member of the group would have seen it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.clock import Clock
from bot.transports.base import EventSink, Incoming, Joined, Left, Member, SendError


@dataclass(frozen=True)
class Sent:
    at: datetime
    chat: str  # "room" or "dm:<member id>"
    text: str
    mentions: tuple[str, ...]
    room_id: str | None = None
    kinds: tuple[str, ...] = ()  # the outbox kinds of the rows this message carried (tests)


class SimulatedGroup:
    """One simulated room (or several) and the bot account in them."""

    def __init__(
        self,
        clock: Clock,
        rooms: dict[str, str] | None = None,
        members: Sequence[Member] = (),
        bot: Member | None = None,
        on_send: Callable[[Sent], None] | None = None,
    ) -> None:
        # rooms: room id -> topic. One room called "room" unless told otherwise.
        self.clock = clock
        self.rooms = dict(rooms or {"room": "训练营"})
        self._members: dict[str, dict[str, Member]] = {r: {} for r in self.rooms}
        for m in members:
            for r in self.rooms:
                self._members[r][m.id] = m
        self.bot = bot or Member("cohortbot", "CohortBot")
        self.sent: list[Sent] = []
        self.on_send = on_send
        self.fail_next: list[SendError] = []  # tests inject send failures here
        self.images: list[tuple[str, str, bytes]] = []  # (chat id, name, data) of pictures sent
        # Members who are not the account's friends: WeChat refuses private messages to them
        # (until they add it: `befriend`).
        self.strangers: set[str] = set()
        self._events: EventSink | None = None

    # --- the Transport port ---
    async def start(self, events: EventSink) -> None:
        self._events = events

    async def stop(self) -> None:
        self._events = None

    def bot_id(self) -> str:
        return self.bot.id

    async def wait_ready(self) -> None:
        return None

    async def resolve_room(self, room: str) -> str:
        if room in self.rooms:
            return room
        for rid, topic in self.rooms.items():
            if topic == room:
                return rid
        raise LookupError(f"no room with topic or id {room!r}")

    async def send_room(self, room_id: str, text: str, mentions: Sequence[str] = ()) -> None:
        self._record("room" if len(self.rooms) == 1 else f"room:{room_id}", text, mentions, room_id)

    async def send_direct(self, member_id: str, text: str) -> None:
        if member_id in self.strangers:
            raise SendError("开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求", not_friend=True)
        self._record(f"dm:{member_id}", text, (), None)

    async def send_image(self, chat_id: str, data: bytes, name: str) -> None:
        if chat_id in self.rooms:
            self._record("room" if len(self.rooms) == 1 else f"room:{chat_id}", f"[{name}]", (), chat_id)
        else:
            if chat_id in self.strangers:
                raise SendError("开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求", not_friend=True)
            self._record(f"dm:{chat_id}", f"[{name}]", (), None)
        self.images.append((chat_id, name, data))

    def befriend(self, member_id: str) -> None:
        self.strangers.discard(member_id)

    async def members(self, room_id: str) -> list[Member]:
        return [*self._members[room_id].values(), self.bot]

    def _record(self, chat: str, text: str, mentions: Sequence[str], room_id: str | None) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        sent = Sent(self.clock.now(), chat, text, tuple(mentions), room_id)
        self.sent.append(sent)
        if self.on_send:
            self.on_send(sent)

    # --- scripted members ---
    def _room(self, room_id: str | None) -> str:
        return room_id or next(iter(self.rooms))

    def member(self, member_id: str, room_id: str | None = None) -> Member:
        found = self._members[self._room(room_id)].get(member_id)
        if found is None:
            for ms in self._members.values():
                if member_id in ms:
                    return ms[member_id]
            return Member(member_id, member_id)
        return found

    async def say(self, member_id: str, text: str, room_id: str | None = None) -> None:
        room = self._room(room_id)
        mentions_bot = text.lstrip().startswith(f"@{self.bot.name}")
        await self._emit(
            Incoming(room, self.member(member_id, room), text, self.clock.now(), mentions_bot=mentions_bot)
        )

    async def dm(self, member_id: str, text: str) -> None:
        self.strangers.discard(member_id)  # WeChat lets only friends write privately
        await self._emit(Incoming(None, self.member(member_id), text, self.clock.now()))

    async def join(self, member: Member, room_id: str | None = None, announce: bool = True) -> None:
        """A member joins; ``announce=False`` is a join the network never reports (QR code)."""
        room = self._room(room_id)
        self._members[room][member.id] = member
        if announce:
            await self._emit(Joined(room, (member,), self.clock.now()))

    async def leave(self, member_id: str, room_id: str | None = None) -> None:
        room = self._room(room_id)
        if self._members[room].pop(member_id, None) is not None:
            await self._emit(Left(room, (member_id,), self.clock.now()))

    async def _emit(self, event: Incoming | Joined | Left) -> None:
        if self._events is None:
            raise RuntimeError("the bot is not connected to this group")
        await self._events(event)
