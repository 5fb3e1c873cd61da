"""The Transport port over a Wechaty puppet-service gateway (python-wechaty, gRPC).

The gateway (Node.js Wechaty with a puppet such as padlocal, xp, wechat4u or workpro) holds
the WeChat account; this adapter is a client of it. It talks to python-wechaty's
``PuppetService`` directly rather than through the ``Wechaty`` facade, because the facade
(0.10.7) sleeps a fixed 60 s after a lost connection and then dies if the gateway is still
down, starts a plugin web server that fails when port 5000 is taken, never fires its
heartbeat event (it listens for "heart-beat", the service emits "heartbeat"), and writes
"@name" from contact names rather than group aliases when it mentions people.

What this adds around it:
- one connection at a time, supervised: a stream that ends, fails, or stops answering
  ``ding`` is closed and reopened; after a connection that was up, every second for the
  first ``fast_retry_for`` seconds (a restarted gateway is usually back by then), then with
  exponential back-off;
- every login after the first is a ``Reconnected`` event; when the account came back with a
  new id (some puppets renumber everything after a re-login) the caches are dropped and
  sends wait until the event has been handled (the rooms looked up again by name);
- events are handled one by one, in arrival order, with duplicate message ids dropped;
  texts and names pass through ``clean_text`` / ``clean_name`` here, at the boundary;
- sends wait for a live connection (the outbox keeps everything queued meanwhile); a send
  whose outcome is unknown (the gateway froze or the line broke during it) raises
  ``SendError(maybe_sent=True)`` and is remembered for a while: if its gRPC call completes
  after all, or the gateway echoes the bot's own message back, a ``Delivered`` event says so;
- news about the connection and the account is handed to the event sink at once, not
  queued behind messages waiting for the connection: ``Disconnected`` when a logged-in
  session is lost, ``LoggedOut`` when the account logs out, ``LoginNeeded`` when the
  gateway shows a QR code (the alerts outside WeChat listen to them, bot/incidents.py);
- names and group aliases are cached, member lists read fresh from the room;
- private messages to members who are not the account's friends (a personal account may
  message only its friends; see "Members who are not friends" below).

Members who are not friends. WeChat refuses a private message to a group member who has not
added the account, in one of two ways depending on the puppet:

(a) the gateway answers the send with an error whose message says so: a direct send raises
    ``SendError(not_friend=True)`` (never retried) when the gateway's error message (gRPC
    message or details, compared case-blind after NFKC, so full-width brackets count) holds
    one of ``NOT_FRIEND_ERRORS``: the notice's own phrases below, or "not friend",
    "not a friend", "not on your friend list", "not in your friend list", "friend verif",
    "verify friend", "不是好友", "非好友", "不是你的好友", "不是您的好友", "朋友验证",
    "好友验证". padlocal's and workpro's send errors are generic ("wechat bad request
    error", "WorkproErrorCode: …") and are not taken for a refusal;
(b) the send is accepted (the web and iPad protocols do this) and WeChat then puts a notice
    into that private chat: "对方开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求，对方验证
    通过后，才能聊天。", which puppets deliver as a message of that chat, from the contact
    (wechat4u, padlocal: a system message, type Unknown) or as a text. A message in a
    private chat is such a notice when its text holds one of ``NOT_FRIEND_NOTICES``:
    "开启了朋友验证", "你还不是他（她）朋友", "请先发送朋友验证请求", "enabled friend
    confirmation", "not your friend", "not his/her friend"; it comes from the contact (any
    type), or from the account itself when it is not a text (a system message filed under
    the account; the account's own texts are echoes of its sends, never notices). The send
    has returned by then, so the adapter calls ``on_not_friend(member_id)``, an attribute the
    engine sets (a plain function or a coroutine function; called from the event task, in
    order with the events, once per notice, so possibly more than once for a member), when
    the bot sent that contact a private message in the last ``NOTICE_WINDOW`` seconds.
    Such a notice is never passed on as an ``Incoming`` message (it is not the member
    speaking), and one in the chat of a contact the bot has not messaged recently is
    dropped (logged only).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import logging
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.clock import Clock, within
from bot.i18n import _
from bot.transports import wechaty_compat as wx
from bot.transports.base import (
    Delivered,
    Disconnected,
    Event,
    EventSink,
    Incoming,
    Joined,
    Left,
    LoggedOut,
    LoginNeeded,
    Member,
    Reconnected,
    SendError,
    clean_name,
    clean_text,
)

log = logging.getLogger(__name__)

AT_SEPARATOR = "\u2005"  # what WeChat puts after an @name
UNSURE_FOR = 600.0  # seconds a send of unknown outcome is remembered, waiting for its echo
UNSURE_MAX = 100  # and how many of them at most
LINGER = 120.0  # seconds a dropped connection stays open for a send still under way on it
NOTICE_WINDOW = 300.0  # seconds after a private send in which WeChat's not-a-friend notice counts
RECENT_MAX = 5000  # contacts remembered as messaged privately in that window, at most


def _fold(text: str) -> str:
    """Text as the not-a-friend markers are compared: NFKC (full-width brackets and letters
    become ASCII), lower case, runs of white space as one space."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


# WeChat's notice in the private chat of a contact who is not the account's friend
# (Chinese client: "对方开启了朋友验证，你还不是他（她）朋友。请先发送朋友验证请求，对方验证通过后，
# 才能聊天。"; English client: "... has enabled Friend Confirmation ...").
NOT_FRIEND_NOTICES = tuple(
    _fold(marker)
    for marker in (
        "开启了朋友验证",
        "你还不是他（她）朋友",
        "请先发送朋友验证请求",
        "enabled friend confirmation",
        "not your friend",
        "not his/her friend",
    )
)
# A send error from the gateway that means the same: the notice's phrases, and what puppets
# and WeChat hooks write when they refuse a private message to a non-friend.
NOT_FRIEND_ERRORS = NOT_FRIEND_NOTICES + tuple(
    _fold(marker)
    for marker in (
        "not friend",
        "not a friend",
        "not on your friend list",
        "not in your friend list",
        "friend verif",
        "verify friend",
        "不是好友",
        "非好友",
        "不是你的好友",
        "不是您的好友",
        "朋友验证",
        "好友验证",
    )
)


def is_not_friend_notice(text: str) -> bool:
    """Whether a message in a private chat is WeChat's notice that the contact is not the
    account's friend."""
    folded = _fold(text)
    return any(marker in folded for marker in NOT_FRIEND_NOTICES)


def is_not_friend_error(exc: BaseException) -> bool:
    """Whether the gateway's error for a private send says the contact is not a friend."""
    parts = [getattr(exc, "message", None), getattr(exc, "details", None)]
    folded = _fold(" ".join(part for part in parts if isinstance(part, str)) or str(exc))
    return any(marker in folded for marker in NOT_FRIEND_ERRORS)


NotFriendCallback = Callable[[str], Awaitable[None] | None]


@dataclass(frozen=True)
class _NotFriend:
    """WeChat's not-a-friend notice after a private send to ``member_id`` (for on_not_friend,
    never an event of the port)."""

    member_id: str


class GatewayError(RuntimeError):
    """The gateway cannot be used as configured (wrong token, never reachable)."""


def retry_delay(outage: float, previous: float, *, fast_for: float, max_backoff: float) -> float:
    """Seconds to wait before the next connection attempt, ``outage`` seconds after the last
    connection that had logged in ended (or since start): every second at first, since a
    gateway that restarts or resumes is usually back within seconds and a refused loopback
    connection costs nothing; then doubling from 2 s up to ``max_backoff``."""
    if outage < fast_for:
        return 1.0
    return min(max(previous * 2, 2.0), max_backoff)


@dataclass(eq=False)
class _Link:
    """One connection to the gateway."""

    puppet: Any
    up: bool = False  # an account logged in on it
    dropped: asyncio.Event = field(default_factory=asyncio.Event)
    calls: set[asyncio.Future[Any]] = field(default_factory=set)  # sends under way


@dataclass(eq=False)
class _Unsure:
    """A send whose outcome is unknown, waiting for a sign that it arrived."""

    conversation_id: str
    sent: str  # the text as sent (with the @-prefix), cleaned as an echo would be
    text: str  # the text the caller gave
    room_id: str | None
    member_id: str | None
    started: float  # loop time the send began (an echo before that is another message)
    settled: bool = False


class WechatyTransport:
    # Called with a member's id when WeChat's not-a-friend notice follows a private message
    # to them that the gateway had accepted (see the module's docstring).
    on_not_friend: NotFriendCallback | None = None

    def __init__(
        self,
        endpoint: str,
        token: str,
        clock: Clock,
        *,
        connect_timeout: float = 120,
        room_wait: float = 60,
        ping_every: float = 30,
        ping_timeout: float = 10,
        send_timeout: float = 30,
        max_backoff: float = 60,
        fast_retry_for: float = 30,
        login_wait: float = 60,
    ) -> None:
        self.endpoint = endpoint
        self.token = token
        self.clock = clock
        self.connect_timeout = connect_timeout
        self.room_wait = room_wait
        self.ping_every = ping_every
        self.ping_timeout = ping_timeout
        self.send_timeout = send_timeout
        self.max_backoff = max_backoff
        self.fast_retry_for = fast_retry_for
        self.login_wait = login_wait
        self._link: _Link | None = None
        self._puppet: Any = None  # the current link's puppet
        self._bot_id = ""
        self._logins = 0
        self._generation = 0  # bumped when the account's id changes: older events are stale
        self._online = asyncio.Event()  # logged in: events and room lists can be read
        self._ready = asyncio.Event()  # and sends may go (set after a renumbering is handled)
        self._dong = asyncio.Event()
        self._events: EventSink | None = None
        self._queue: asyncio.Queue[tuple[str, Any, int]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._lingering: set[asyncio.Task[None]] = set()
        self._telling: set[asyncio.Task[None]] = set()  # news about the connection, under way
        self._seen: OrderedDict[str, None] = OrderedDict()  # recent message ids
        self._names: dict[str, str] = {}  # contact id -> name (cleaned)
        self._aliases: dict[tuple[str, str], str | None] = {}  # (room, contact) -> group alias
        self._unsure: deque[_Unsure] = deque(maxlen=UNSURE_MAX)
        self._echoes: deque[tuple[str, str, float]] = deque(maxlen=200)  # own messages seen
        self._messaged: OrderedDict[str, float] = OrderedDict()  # contact -> loop time of last DM
        self._fatal: Exception | None = None
        self.connects = 0

    # --- the Transport port ----------------------------------------------------------

    async def start(self, events: EventSink) -> None:
        """Connect, log in, and keep the connection up; GatewayError if the gateway cannot
        be reached within ``connect_timeout`` or refuses the token."""
        self._events = events
        self._tasks = [
            asyncio.create_task(self._supervise(), name="wechaty-connection"),
            asyncio.create_task(self._consume(), name="wechaty-events"),
        ]
        try:
            await within(self._wait_first_login(), self.connect_timeout)
        except TimeoutError:
            await self.stop()
            raise GatewayError(
                _(
                    "no logged-in account at the gateway {endpoint} after {seconds:.0f} s; check that "
                    "the gateway runs, that `endpoint` is its address, and that its account is logged in"
                ).format(endpoint=self.endpoint, seconds=self.connect_timeout)
            ) from None
        except GatewayError:
            await self.stop()
            raise

    async def _wait_first_login(self) -> None:
        while not self._ready.is_set():
            if self._fatal is not None:
                raise GatewayError(str(self._fatal))
            with contextlib.suppress(TimeoutError):
                await within(self._ready.wait(), 0.5)

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._lingering, *self._telling]
        for task in tasks:
            task.cancel()
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=10)
            for task in stuck:
                log.error("%s did not stop within 10 s; leaving it", task.get_name())
        self._tasks = []
        self._close(linger=False)

    def bot_id(self) -> str:
        return self._bot_id

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def resolve_room(self, room: str) -> str:
        """The id of the room whose id or topic is ``room``; the room list of a freshly
        logged-in account can take a while to load, so keep looking for ``room_wait`` s.
        Two groups with that name are refused: posting to the wrong one is worse than none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.room_wait
        topics: list[str] = []
        while True:
            with contextlib.suppress(TimeoutError):
                await within(self._online.wait(), max(deadline - loop.time(), 0.1))
            try:
                puppet = self._live()
                ids = list(await puppet.room_list())
                if room in ids:
                    return room
                topics = [(await puppet.room_payload(rid)).topic for rid in ids]
                same = [rid for rid, topic in zip(ids, topics, strict=True) if topic == room]
                if len(same) == 1:
                    return same[0]
                if len(same) > 1:
                    raise LookupError(
                        _(
                            "the account is in {n} groups called {room!r} ({ids}); write the room id "
                            "of the right one in `room`"
                        ).format(n=len(same), room=room, ids=", ".join(same))
                    )
            except (OSError, wx.GRPCError, wx.StreamTerminatedError) as exc:
                log.warning("could not read the room list yet (%s)", type(exc).__name__)
            if loop.time() > deadline:
                known = ", ".join(repr(clean_name(t)) for t in topics[:10]) or _("none")
                raise LookupError(
                    _(
                        "the account is in no group called {room!r} (after {seconds:.0f} s); its "
                        "groups: {known}. Write the group's exact name or its room id in `room`"
                    ).format(room=room, seconds=self.room_wait, known=known)
                )
            await asyncio.sleep(2)

    async def send_room(self, room_id: str, text: str, mentions: Sequence[str] = ()) -> None:
        names = [await self._shown_in(room_id, mid) for mid in mentions]
        # The @names go in the text as WeChat writes them; mention_ids make them real @s.
        prefix = "".join(f"@{name}{AT_SEPARATOR}" for name in names)
        await self._send(room_id, prefix + text, list(mentions), said=text, room_id=room_id)

    async def send_direct(self, member_id: str, text: str) -> None:
        self._note_messaged(member_id)  # before the send: the notice can beat its answer
        await self._send(member_id, text, [], said=text, member_id=member_id)

    async def send_image(self, chat_id: str, data: bytes, name: str) -> None:
        """A picture (PNG) to a room or a member, as WeChat's file message."""
        room = chat_id if "@" in chat_id else None
        said = f"[{name}]"
        await self._send(
            chat_id,
            said,
            [],
            said=said,
            room_id=room,
            member_id=None if room else chat_id,
            image=(data, name),
        )

    async def members(self, room_id: str) -> list[Member]:
        await self._online.wait()
        puppet = self._live()
        # Ask the gateway to forget its cached room first: joins by QR code fire no event.
        with contextlib.suppress(Exception):
            await puppet.room_payload_dirty(room_id)
            await puppet.room_member_payload_dirty(room_id)
        ids = list(await puppet.room_members(room_id))
        limit = asyncio.Semaphore(16)

        async def one(mid: str) -> Member:
            async with limit:
                payload = await puppet.room_member_payload(room_id, mid)
            name = clean_name(payload.name) or await self._name(mid)
            alias = clean_name(payload.room_alias) or None
            self._names[mid] = name
            self._aliases[(room_id, mid)] = alias
            return Member(mid, name, alias)

        return list(await asyncio.gather(*(one(mid) for mid in ids)))

    # --- sending -------------------------------------------------------------------------

    async def _send(
        self,
        conversation_id: str,
        text: str,
        mention_ids: list[str],
        *,
        said: str,
        room_id: str | None = None,
        member_id: str | None = None,
        image: tuple[bytes, str] | None = None,
    ) -> None:
        link = self._link
        if link is None or not self._ready.is_set():
            raise SendError("not connected to the gateway", retry=True)
        loop = asyncio.get_running_loop()
        started = loop.time()
        if image is not None:
            data, name = image
            box = wx.FileBox.from_base64(base64.b64encode(data), name=name)
            sending = link.puppet.message_send_file(conversation_id, box)
        else:
            sending = link.puppet.message_send_text(conversation_id, text, mention_ids=mention_ids or None)
        call = asyncio.ensure_future(sending)
        link.calls.add(call)
        call.add_done_callback(link.calls.discard)
        dropped = asyncio.ensure_future(link.dropped.wait())
        try:
            await asyncio.wait(
                {call, dropped}, timeout=self.send_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        except asyncio.CancelledError:
            call.cancel()
            raise
        finally:
            dropped.cancel()
        if call.done() and not call.cancelled():
            exc = call.exception()
            if exc is None:
                return
            if isinstance(exc, wx.GRPCError) and member_id is not None and is_not_friend_error(exc):
                first = (str(exc.message or exc.status).strip().splitlines() or ["?"])[0][:200]
                raise SendError(
                    f"WeChat refused the private message: {member_id} is not the account's friend ({first})",
                    retry=False,
                    not_friend=True,
                ) from exc
            if isinstance(exc, wx.GRPCError):
                # The gateway answered, with an error: the message did not go out.
                raise SendError(
                    f"the gateway refused the message: {exc.message or exc.status}", retry=True
                ) from exc
            if isinstance(exc, ConnectionRefusedError):
                raise SendError("the gateway is not reachable", retry=True) from exc
            if not isinstance(exc, OSError | wx.StreamTerminatedError | AttributeError):
                raise exc
            why = type(exc).__name__
        elif call.done():
            why = "cancelled"
        else:
            why = (
                "the connection was dropped"
                if link.dropped.is_set()
                else f"no answer in {self.send_timeout:.0f} s"
            )
        # The request may have reached WeChat: never risk sending it twice (the operators
        # are asked to check), but listen for a sign that it arrived.
        unsure = _Unsure(conversation_id, clean_text(text).strip(), said, room_id, member_id, started)
        self._remember(unsure)
        if not call.done():
            call.add_done_callback(lambda done: self._late_answer(unsure, done))
        raise SendError(f"the connection broke during the send; it may have arrived ({why})", maybe_sent=True)

    def _note_messaged(self, member_id: str) -> None:
        self._messaged[member_id] = asyncio.get_running_loop().time()
        self._messaged.move_to_end(member_id)
        while len(self._messaged) > RECENT_MAX:
            self._messaged.popitem(last=False)

    def _messaged_recently(self, member_id: str) -> bool:
        now = asyncio.get_running_loop().time()
        while self._messaged and now - next(iter(self._messaged.values())) > NOTICE_WINDOW:
            self._messaged.popitem(last=False)
        sent = self._messaged.get(member_id)
        return sent is not None and now - sent <= NOTICE_WINDOW

    def _remember(self, unsure: _Unsure) -> None:
        for i, (conversation, text, seen) in enumerate(self._echoes):
            if seen >= unsure.started and conversation == unsure.conversation_id and text == unsure.sent:
                del self._echoes[i]  # echoed already, while the send was in doubt
                self._settle(unsure)
                return
        self._unsure.append(unsure)

    def _late_answer(self, unsure: _Unsure, call: asyncio.Future[Any]) -> None:
        """The gRPC call of a send in doubt finished after all (the gateway resumed)."""
        if not call.cancelled() and call.exception() is None:
            self._settle(unsure)

    def _settle(self, unsure: _Unsure) -> None:
        if unsure.settled:
            return
        unsure.settled = True
        with contextlib.suppress(ValueError):
            self._unsure.remove(unsure)
        log.info("a send reported as cut did arrive: %.40s", unsure.text)
        self._queue.put_nowait(("delivered", unsure, self._generation))

    def _echo(self, conversation_id: str, text: str) -> _Unsure | None:
        """The bot's own message came back: the send in doubt it settles, if any."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        text = text.strip()
        while self._unsure and now - self._unsure[0].started > UNSURE_FOR:
            self._unsure.popleft()
        for unsure in self._unsure:
            if unsure.conversation_id == conversation_id and unsure.sent == text:
                unsure.settled = True
                self._unsure.remove(unsure)
                return unsure
        self._echoes.append((conversation_id, text, now))
        return None

    async def _shown_in(self, room_id: str, member_id: str) -> str:
        key = (room_id, member_id)
        if key not in self._aliases:
            try:
                payload = await self._live().room_member_payload(room_id, member_id)
                self._aliases[key] = clean_name(payload.room_alias) or None
                if clean_name(payload.name):
                    self._names[member_id] = clean_name(payload.name)
            except wx.GRPCError:
                self._aliases[key] = None  # no member payload: shown by name (lost connections raise)
        return self._aliases[key] or await self._name(member_id)

    async def _name(self, contact_id: str) -> str:
        if contact_id not in self._names:
            try:
                payload = await self._live().contact_payload(contact_id)
                self._names[contact_id] = clean_name(payload.name) or clean_name(contact_id) or "?"
            except wx.GRPCError:
                return clean_name(contact_id) or "?"  # a contact without a payload is shown by its id
        return self._names[contact_id]

    # --- connection -----------------------------------------------------------------------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        outage_since = loop.time()
        delay = 1.0
        while True:
            self.connects += 1
            reason = await self._connect_once()
            link = self._link
            was_up = link is not None and link.up
            if self._online.is_set():  # a logged-in session was lost (not a wait for a login)
                self._tell(Disconnected(self.clock.now(), reason, self.endpoint))
            self._online.clear()
            self._ready.clear()
            self._close()
            if self._fatal is not None and not was_up and self._bot_id == "":
                return  # start() reports it
            if was_up:  # a new outage: the back-off starts again from one second
                outage_since, delay = loop.time(), 1.0
            delay = retry_delay(
                loop.time() - outage_since, delay, fast_for=self.fast_retry_for, max_backoff=self.max_backoff
            )
            log.warning("gateway %s: %s; reconnecting in %.0f s", self.endpoint, reason, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> str:
        """Run one connection until it ends; returns why it ended."""
        puppet = wx.PuppetService(wx.PuppetOptions(end_point=self.endpoint, token=self.token))
        link = _Link(puppet)
        puppet.on("login", lambda payload: self._on_login(link, payload))
        puppet.on("logout", self._on_logout)
        puppet.on("scan", self._on_scan)
        puppet.on("dong", lambda _payload: self._dong.set())
        for name in ("message", "room-join", "room-leave"):
            puppet.on(
                name, lambda payload, name=name: self._queue.put_nowait((name, payload, self._generation))
            )
        self._link, self._puppet = link, puppet
        stream = asyncio.create_task(self._open(puppet))
        watchdog = asyncio.create_task(self._watch(puppet))
        try:
            done, _pending = await asyncio.wait({stream, watchdog}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for running in (stream, watchdog):
                running.cancel()
            await asyncio.wait({stream, watchdog}, timeout=10)
            for ended in (stream, watchdog):
                if ended.done() and not ended.cancelled():
                    ended.exception()  # retrieved: the reason is reported below, once
        task = done.pop()
        exc = task.exception()
        if exc is None:
            return "the event stream ended"
        if isinstance(exc, wx.GRPCError) and "UNAUTHENTICATED" in str(exc.status):
            self._fatal = GatewayError(
                _("the gateway {endpoint} refused the token; check `token`").format(endpoint=self.endpoint)
            )
            return "the token was refused"
        if isinstance(exc, TimeoutError):
            return str(exc) or "it stopped answering"
        if isinstance(exc, OSError):
            return f"cannot reach it ({exc.strerror or type(exc).__name__})"
        return f"{type(exc).__name__}: {exc}"

    async def _open(self, puppet: Any) -> None:
        """Open the channel and the event stream. Not PuppetService.start(): that calls the
        gateway's stop() first, which logs a real account out, and checks the endpoint with
        a blocking 3 s telnet on the event loop."""
        host, port = split_endpoint(self.endpoint)
        try:
            _reader, writer = await within(asyncio.open_connection(host, int(port)), self.ping_timeout)
        except TimeoutError:
            raise TimeoutError(f"no answer to a connection within {self.ping_timeout:.0f} s") from None
        writer.close()
        puppet.channel = wx.Channel(host=host, port=int(port))
        puppet.channel._authority = self.token  # how python-wechaty sends the token
        puppet._puppet_stub = wx.PuppetStub(puppet.channel)
        try:
            await within(puppet.puppet_stub.start(), self.ping_timeout * 2)
        except TimeoutError:
            raise TimeoutError(
                f"the gateway did not open a session within {self.ping_timeout * 2:.0f} s"
            ) from None
        await puppet._listen_for_event()  # runs until the stream ends

    async def _watch(self, puppet: Any) -> None:
        """Silent stalls happen after idle periods: ask for a sign of life regularly."""
        waited = 0
        while True:
            await asyncio.sleep(self.ping_every if self._online.is_set() else 1)
            if not self._online.is_set() and puppet.login_user_id is None:
                waited += 1
                if waited > self.login_wait:
                    raise TimeoutError(f"no logged-in account after {self.login_wait:.0f} s")
                continue
            self._dong.clear()
            await within(puppet.ding("cohortbot"), self.ping_timeout)
            try:
                await within(self._dong.wait(), self.ping_timeout)
            except TimeoutError:
                raise TimeoutError(f"no answer to a ping within {self.ping_timeout:.0f} s") from None

    def _close(self, linger: bool = True) -> None:
        link, self._link, self._puppet = self._link, None, None
        if link is None:
            return
        link.dropped.set()
        pending = [call for call in link.calls if not call.done()]
        if not (linger and pending):
            for call in pending:
                call.cancel()
            _close_channel(link.puppet)
            return
        # A send is still under way on this connection: a frozen gateway that resumes
        # completes it and answers here, which tells whether it arrived.
        task = asyncio.create_task(self._linger(link, pending), name="wechaty-linger")
        self._lingering.add(task)
        task.add_done_callback(self._lingering.discard)

    async def _linger(self, link: _Link, pending: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.wait(pending, timeout=LINGER)
        finally:
            for call in pending:
                call.cancel()
            _close_channel(link.puppet)

    def _on_login(self, link: _Link, payload: Any) -> None:
        new_id = str(payload.contact_id)
        old_id = self._bot_id
        if self._online.is_set() and new_id == old_id:
            return  # told again; nothing changed
        link.up = True
        self._bot_id = new_id
        self._logins += 1
        self._online.set()
        log.info("gateway %s: logged in as %s", self.endpoint, new_id)
        if self._logins == 1:
            self._ready.set()
            return
        changed = bool(old_id) and new_id != old_id
        if changed:
            # Room and member ids known before may be dead: forget them, and hold the sends
            # until the Reconnected event has been handled (the rooms looked up again).
            log.warning(
                "gateway %s: the account came back with a new id (%s, was %s)", self.endpoint, new_id, old_id
            )
            self._generation += 1
            self._names.clear()
            self._aliases.clear()
            self._unsure.clear()
            self._echoes.clear()
            self._messaged.clear()
            self._ready.clear()
        else:
            self._ready.set()
        self._queue.put_nowait(("reconnected", changed, self._generation))

    def _on_logout(self, payload: Any) -> None:
        log.warning("gateway %s: the account %s logged out", self.endpoint, payload.contact_id)
        self._online.clear()
        self._ready.clear()
        self._tell(LoggedOut(self.clock.now(), clean_text(getattr(payload, "data", "") or "", 200)))

    def _on_scan(self, payload: Any) -> None:
        """The gateway shows a QR code to log the account in (never logged: the code lets
        whoever scans it in)."""
        status = str(getattr(payload.status, "name", payload.status)).lower()
        if status in ("scanned", "confirmed"):
            log.info("gateway %s: the QR code was scanned (%s); waiting for the login", self.endpoint, status)
            return
        log.warning("gateway %s: the account must log in: scan the QR code (%s)", self.endpoint, status)
        self._tell(LoginNeeded(self.clock.now(), clean_text(payload.qrcode or "", 2000).strip(), status))

    def _tell(self, event: Event) -> None:
        """News about the connection or the account, handed over at once rather than queued
        behind messages that wait for the connection to come back."""
        sink = self._events
        if sink is None:
            return

        async def tell() -> None:
            try:
                await sink(event)
            except Exception:
                log.exception("could not handle %r", event)

        task = asyncio.create_task(tell(), name="wechaty-news")
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    # --- events -------------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            kind, payload, generation = await self._queue.get()
            event = await self._fetch(kind, payload, generation)
            try:
                if isinstance(event, _NotFriend):
                    await self._tell_not_friend(event.member_id)
                elif event is not None and self._events is not None:
                    await self._events(event)
            except Exception:
                log.exception("could not handle a %s event from the gateway", kind)
            finally:
                if kind == "reconnected" and generation == self._generation and self._online.is_set():
                    self._ready.set()  # the rooms have been looked up again: sends may go

    async def _tell_not_friend(self, member_id: str) -> None:
        callback = self.on_not_friend
        if callback is None:
            return
        result = callback(member_id)
        if inspect.isawaitable(result):
            await result

    async def _fetch(self, kind: str, payload: Any, generation: int) -> Event | _NotFriend | None:
        """The event's details from the gateway. When the connection drops meanwhile, wait
        for it and ask again: a check-in already received must not be lost (unless the
        account has been renumbered since: its old ids are gone)."""
        if kind == "reconnected":
            return Reconnected(self.clock.now(), ids_changed=bool(payload))
        if kind == "delivered":
            return Delivered(payload.room_id, payload.member_id, payload.text, self.clock.now())
        for attempt in range(1, 6):
            await self._online.wait()
            try:
                return await self._convert(kind, payload)
            except (OSError, wx.GRPCError, wx.StreamTerminatedError) as exc:
                if generation != self._generation:
                    log.warning("dropped a %s event from before the account's ids changed", kind)
                    return None
                if attempt == 1:
                    log.warning(
                        "could not read a %s event from the gateway (%s); trying again",
                        kind,
                        type(exc).__name__,
                    )
                await asyncio.sleep(attempt)
        log.error("gave up reading a %s event from the gateway after 5 tries: %s", kind, payload)
        return None

    def _live(self) -> Any:
        puppet = self._puppet
        if puppet is None:
            raise ConnectionError("not connected to the gateway")
        return puppet

    async def _convert(self, kind: str, payload: Any) -> Event | _NotFriend | None:
        now = self.clock.now()
        puppet = self._live()
        if kind == "message":
            if payload.message_id in self._seen:
                return None  # the gateway sometimes delivers a message twice
            msg = await puppet.message_payload(payload.message_id)
            text = clean_text(msg.text)
            refused = self._notice_in(msg, text)
            if refused is not None:
                self._see(payload.message_id)
                if self._messaged_recently(refused):
                    log.warning("WeChat refused a private message to %s: not the account's friend", refused)
                    return _NotFriend(refused)
                log.info("ignored a not-a-friend notice in the chat of %s, not messaged recently", refused)
                return None
            if msg.from_id == self._bot_id:
                self._see(payload.message_id)
                # Our own sends come back: one may settle a send that was in doubt.
                unsure = self._echo(msg.room_id or msg.to_id or "", text)
                if unsure is None:
                    return None
                return Delivered(unsure.room_id, unsure.member_id, unsure.text, now)
            if msg.type != wx.TEXT:
                self._see(payload.message_id)
                return None  # pictures, cards etc. are not for us
            room_id = msg.room_id or None
            name = await self._name(msg.from_id)
            alias = await self._shown_in(room_id, msg.from_id) if room_id else None
            self._see(payload.message_id)
            sender = Member(msg.from_id, name, alias if alias != name else None)
            mentions = tuple(msg.mention_ids or ())
            return Incoming(
                room_id,
                sender,
                text,
                _when(msg.timestamp, now),
                mentions_bot=self._bot_id in mentions,
                mentions=mentions,
            )
        if kind == "room-join":
            members = []
            for mid in payload.invited_ids:
                self._aliases.pop((payload.room_id, mid), None)
                shown = await self._shown_in(payload.room_id, mid)  # reads the group alias
                name = await self._name(mid)
                members.append(Member(mid, name, shown if shown != name else None))
            return Joined(payload.room_id, tuple(members), _when(payload.timestamp, now))
        if kind == "room-leave":
            return Left(payload.room_id, tuple(payload.removed_ids), _when(payload.timestamp, now))
        return None

    def _notice_in(self, msg: Any, text: str) -> str | None:
        """The contact in whose private chat WeChat put its not-a-friend notice, if ``msg`` is
        that notice: from the contact (any type), or filed under the account itself as a
        system message (the account's own texts are echoes of its sends, never notices)."""
        if msg.room_id or not is_not_friend_notice(text):
            return None
        if msg.from_id and msg.from_id != self._bot_id:
            return str(msg.from_id)
        if msg.type != wx.TEXT and msg.to_id and msg.to_id != self._bot_id:
            return str(msg.to_id)
        return None

    def _see(self, message_id: str) -> None:
        self._seen[message_id] = None
        if len(self._seen) > 5000:
            self._seen.popitem(last=False)


def _close_channel(puppet: Any) -> None:
    if puppet is not None and puppet.channel is not None:
        with contextlib.suppress(Exception):
            puppet.channel.close()


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """host:port, the host of an IPv6 address written in brackets ([::1]:8788) without them."""
    host, _colon, port = endpoint.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def _when(timestamp: float | None, now: datetime) -> datetime:
    """The network's time for an event, in UTC; gateways send seconds or milliseconds, and a
    clock far off from ours is not trusted (the day a check-in counts for depends on it)."""
    if not timestamp:
        return now
    seconds = timestamp / 1000 if timestamp > 2_145_888_000 else timestamp
    try:
        at = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return now
    return at if abs(at - now) < timedelta(hours=1) else now
