"""The Transport port: everything the bot needs from a chat network, and the plain values
that cross it. No network object ever leaves its adapter."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    alias: str | None = None  # group nickname, if the network has one

    @property
    def shown(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class Incoming:
    """A message to the bot: in a room (room_id set) or direct (room_id None)."""

    room_id: str | None
    sender: Member
    text: str
    at: datetime
    mentions_bot: bool = False
    mentions: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Joined:
    room_id: str
    members: tuple[Member, ...]
    at: datetime


@dataclass(frozen=True)
class Left:
    room_id: str
    member_ids: tuple[str, ...]
    at: datetime


Event = Incoming | Joined | Left
EventSink = Callable[[Event], Awaitable[None]]


class SendError(Exception):
    """A send that did not go through; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


class Transport(Protocol):
    async def start(self, events: EventSink) -> None:
        """Connect and begin delivering events to ``events``."""

    async def stop(self) -> None: ...

    async def wait_ready(self) -> None:
        """Return once sends can go through (at once, unless the network is reconnecting)."""

    async def resolve_room(self, room: str) -> str:
        """A room's id from its topic or id; LookupError naming it when it is not there."""

    async def send_room(self, room_id: str, text: str, mentions: Sequence[str] = ()) -> None: ...

    async def send_direct(self, member_id: str, text: str) -> None: ...

    async def members(self, room_id: str) -> list[Member]: ...

    def bot_id(self) -> str:
        """The bot account's own contact id (after start)."""
