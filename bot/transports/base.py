"""The Transport port: everything the bot needs from a chat network, and the plain values
that cross it. No network object ever leaves its adapter."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

MAX_NAME = 40  # characters of a name the bot keeps and shows
# Characters of an incoming message the bot keeps: more than WeChat lets one text message carry
# (a long 心得 or questionnaire answer is kept whole), while a forged gigantic one stays bounded.
MAX_TEXT = 20_000

# C0/C1 controls (but tab and newline), DEL, and the invisible format characters that
# reorder or hide text (bidi overrides, zero-width joiners, byte-order marks).
_CONTROL = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_LINE_BREAKS = re.compile(r"[\r\n\t\u2028\u2029\x0b\x0c\x85]+")


def _pictograph(text: str, i: int) -> bool:
    """Whether ``text[i]`` is part of an emoji: a symbol, a skin tone, the emoji style mark."""
    return 0 <= i < len(text) and (
        text[i] == "\ufe0f" or (ord(text[i]) >= 0x2000 and unicodedata.category(text[i]) in ("So", "Sk"))
    )


def _invisible(m: re.Match[str]) -> str:
    """A control or invisible character, dropped; but the zero-width joiner between two parts of
    an emoji is kept (👩‍💻 is one picture, and in names and testimonials it would become two)."""
    if m[0] == "\u200d" and _pictograph(m.string, m.start() - 1) and _pictograph(m.string, m.end()):
        return m[0]
    return ""


def clean_text(text: object, limit: int = MAX_TEXT) -> str:
    """A message text from the network, safe to store and match: no NUL or other control
    characters (PostgreSQL refuses NUL; invisible ones hide keywords), newlines kept,
    bounded in length."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[: limit * 2].replace("\r\n", "\n")
    return _CONTROL.sub(_invisible, text)[:limit]


def clean_name(name: object, limit: int = MAX_NAME) -> str:
    """A display name from the network: one line, no control or invisible characters,
    at most ``limit`` characters (a name must never forge lines in the bot's posts)."""
    text = "" if name is None else str(name)
    text = _LINE_BREAKS.sub(" ", text[: limit * 4])
    text = _CONTROL.sub(_invisible, text)
    text = "".join(c for c in text if unicodedata.category(c) != "Cc")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    alias: str | None = None  # group nickname, if the network has one

    def __post_init__(self) -> None:
        # Names come from the network: one line, bounded, whatever the adapter passed.
        object.__setattr__(self, "id", clean_text(self.id, 200).strip())
        object.__setattr__(self, "name", clean_name(self.name) or clean_name(self.id) or "?")
        if self.alias is not None:
            object.__setattr__(self, "alias", clean_name(self.alias) or None)

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


@dataclass(frozen=True)
class Reconnected:
    """The connection came back after a drop. ``ids_changed``: the network gave the bot
    account a new id (some puppets renumber everything after a re-login), so room and
    member ids known before may be dead: resolve rooms by name and re-read members."""

    at: datetime
    ids_changed: bool = False


@dataclass(frozen=True)
class Delivered:
    """A send that was reported as cut mid-flight (SendError with ``maybe_sent``) did arrive:
    the network echoed it back. ``room_id`` or ``member_id`` names the chat."""

    room_id: str | None
    member_id: str | None
    text: str
    at: datetime


@dataclass(frozen=True)
class Disconnected:
    """The connection to the gateway, with the account logged in on it, was lost (the stream
    ended or broke, or the gateway stopped answering). The adapter keeps reconnecting;
    ``Reconnected`` says it is back. Sends wait meanwhile."""

    at: datetime
    reason: str
    endpoint: str = ""


@dataclass(frozen=True)
class LoggedOut:
    """The gateway answers, but the bot's account logged out (``reason``, as the gateway
    gave it): nothing can be sent until it logs in again (``Reconnected``)."""

    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class LoginNeeded:
    """The gateway shows a QR code to scan with the bot's WeChat (``qrcode``: the code's
    content, not a picture; ``status``: the gateway's scan status, e.g. "waiting",
    "timeout"). ``Reconnected`` follows the login."""

    at: datetime
    qrcode: str = ""
    status: str = ""


Event = Incoming | Joined | Left | Reconnected | Delivered | Disconnected | LoggedOut | LoginNeeded
EventSink = Callable[[Event], Awaitable[None]]


class SendError(Exception):
    """A send that did not go through. ``retry``: trying again may help. ``maybe_sent``: the
    connection broke during the send, so it may have arrived (never retried; the operators
    are told to check before resending). ``not_friend``: a private message the network
    refuses because the member is not the account's friend (WeChat's "开启了朋友验证…")."""

    def __init__(
        self, message: str, retry: bool = True, *, maybe_sent: bool = False, not_friend: bool = False
    ) -> None:
        super().__init__(message)
        self.retry = retry and not maybe_sent and not not_friend
        self.maybe_sent = maybe_sent
        self.not_friend = not_friend


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

    async def send_image(self, chat_id: str, data: bytes, name: str) -> None:
        """A picture to a room (its id) or a member (their id), e.g. the report's PNG."""

    async def members(self, room_id: str) -> list[Member]: ...

    def bot_id(self) -> str:
        """The bot account's own contact id (after start)."""
