"""The one paced sender. Every message the bot sends is a row in the outbox table (written
in the same transaction as whatever caused it); this loop sends the rows in order without
breaking the pacing limits, folding acknowledgements that pile up into one message.

Order: lower priority first, then first come first served. Limits (config `pacing`): a gap
of ``same_chat_seconds`` between two sends to one chat, ``any_chat_seconds`` when the chat
changes, at most ``per_minute`` sends in any 60 s, at most ``max_mentions`` @s a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from bot.clock import Clock
from bot.transports.base import SendError, Transport
from storage import repo
from storage.repo import OutRow

log = logging.getLogger(__name__)

# Short group notices that may travel together in one message, mentions and all.
FOLDABLE = frozenset({"ack", "welcome", "announce", "rollcall", "friend"})
FOLD_CHARS = 1000  # a folded message stays readable on a phone


@dataclass(frozen=True)
class Pacing:
    same_chat_seconds: float = 1.5
    any_chat_seconds: float = 3.0
    per_minute: int = 30
    max_mentions: int = 20
    ack_window_seconds: float = 3.0  # an acknowledgement waits this long for others to join it
    ack_every_minutes: float = 20  # at most one roll call per cohort this often
    roll_call_mentions: bool = False  # roll calls @ the members they name (small groups)
    ack_max_wait_minutes: float | None = None  # a name waits at most this long (None: by group size)
    retries: int = 3  # attempts per message before it is recorded as failed


class Outbox:
    def __init__(self, db: Engine, transport: Transport, clock: Clock, pacing: Pacing) -> None:
        self.db = db
        self.transport = transport
        self.clock = clock
        # Told about messages that failed for good, or whose fate is unknown (maybe_sent):
        # the engine tells the operators.
        self.on_failed: Callable[[list[OutRow], str, bool], None] | None = None
        # Told about every message that went out, with the rows it carried (tests, figures).
        self.on_sent: Callable[[list[OutRow]], None] | None = None
        # Told about a private message refused because the member is not a friend; returns
        # nothing: the engine records it and chooses the fallback.
        self.on_not_friend: Callable[[OutRow], None] | None = None
        self.pacing = pacing
        # The cohorts whose rows this sender may send (None: every one). Processes sharing a
        # database (one per WeChat account) each send only the cohorts they hold a lease on
        # (storage/db.py); the set is live: a lost lease empties it and sending stops.
        self.cohorts: Collection[str] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._last_chat: str | None = None
        self._last_at: dict[str, datetime] = {}
        self._last_any: datetime | None = None
        self._window: deque[datetime] = deque()
        self.sends = 0
        self.failed = 0

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def idle(self) -> None:
        """Wait until nothing is pending."""
        await self._idle.wait()

    def recover(self, grace: timedelta) -> None:
        """At start-up: never resend what a crash interrupted (and tell the operators it may
        be missing); drop group notices too old to make sense (private messages, rewards and
        alerts still go); remember the recent sends so pacing holds across the restart."""
        now = self.clock.now()
        with self.db.begin() as conn:
            cut = repo.interrupted_sends(conn, self.cohorts)
            if cut:
                log.warning(
                    "%d message(s) were being sent when the bot stopped; not sending them again: %s",
                    len(cut),
                    [r.text[:30] for r in cut[:5]],
                )
                repo.mark(conn, [r.id for r in cut], "unknown", error="the bot stopped during the send")
            stale = repo.stale_pending(conn, now - grace, self.cohorts)
            if stale:
                log.warning(
                    "%d queued group message(s) were due more than %s ago and were not sent: %s",
                    len(stale),
                    grace,
                    [r.text[:30] for r in stale[:5]],
                )
                repo.mark(conn, [r.id for r in stale], "expired")
            for chat, at in repo.recent_sends(conn, now - timedelta(seconds=60), self.cohorts):
                self._note_send(chat, at)
        if cut and self.on_failed is not None:
            self.on_failed(cut, "the bot stopped during the send", True)

    def _earliest(self, chat: str, now: datetime) -> datetime:
        p = self.pacing
        t = now
        if chat in self._last_at:
            t = max(t, self._last_at[chat] + timedelta(seconds=p.same_chat_seconds))
        if self._last_any is not None and chat != self._last_chat:
            t = max(t, self._last_any + timedelta(seconds=p.any_chat_seconds))
        while self._window and self._window[0] <= now - timedelta(seconds=60):
            self._window.popleft()
        if len(self._window) >= p.per_minute:
            t = max(t, self._window[0] + timedelta(seconds=60))
        return t

    async def _sleep(self, seconds: float, wake_early: bool) -> None:
        self._wake.clear()
        if not wake_early:
            await asyncio.sleep(seconds)
            return
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # arrives as the event fires, and the bot would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def run(self) -> None:
        while True:
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not silence the bot for good: log, wait, go on.
                log.exception("outbox: could not send; trying again in 5 s")
                await asyncio.sleep(5)

    async def _step(self) -> None:
        # While the network reconnects, everything stays queued (and unclaimed) in the table.
        await self.transport.wait_ready()
        self._wake.clear()
        now = self.clock.now()
        with self.db.connect() as conn:
            head = repo.next_ready(conn, now, self.cohorts)
            wakeup = repo.next_wakeup(conn, self.cohorts) if head is None else None
        if head is None:
            if wakeup is None:
                self._idle.set()
                await self._wake.wait()
            else:
                await self._sleep((wakeup - now).total_seconds(), wake_early=True)
            return
        earliest = self._earliest(head.chat, now)
        if earliest > now:
            # Sleep through the pacing gap; rows that arrive meanwhile can join this send.
            await self._sleep((earliest - now).total_seconds(), wake_early=False)
            return
        await self._send(self._batch(head))

    def _batch(self, head: OutRow) -> list[OutRow]:
        """The rows that go out as one message: short notices to one room (acknowledgements,
        welcomes, reward announcements, roll calls) travel together, whether or not their
        own wait is over, up to the mention limit and FOLD_CHARS."""
        if head.kind not in FOLDABLE or head.room_id is None:
            return [head]
        with self.db.connect() as conn:
            rows = repo.foldable(conn, head.room_id, FOLDABLE, self.pacing.max_mentions + 1, self.cohorts)
        batch, mentions, chars = [head], len(head.mentions), len(head.text)
        for r in rows:
            if r.id == head.id:
                continue
            if mentions + len(r.mentions) > self.pacing.max_mentions or chars + len(r.text) > FOLD_CHARS:
                break
            batch.append(r)
            mentions += len(r.mentions)
            chars += len(r.text) + 1
        return sorted(batch, key=lambda r: r.id)

    async def _send(self, batch: list[OutRow]) -> None:
        with self.db.begin() as conn:
            claimed = set(repo.claim_sends(conn, [r.id for r in batch]))
        batch = [r for r in batch if r.id in claimed]
        if not batch:
            return  # another sender took them
        head = batch[0]
        ids = [r.id for r in batch]
        text = "\n".join(r.text for r in batch)
        # One @ per member, even if two of their notices travel together.
        mentions = list(dict.fromkeys(m for r in batch for m in r.mentions))
        now = self.clock.now()
        try:
            if head.kind == "image":
                with self.db.connect() as conn:
                    data = repo.image_of(conn, head.id) or b""
                await self.transport.send_image(head.room_id or head.member_id or "", data, head.text)
            elif head.room_id is not None:
                await self.transport.send_room(head.room_id, text, mentions)
            else:
                assert head.member_id is not None
                await self.transport.send_direct(head.member_id, text)
        except Exception as exc:
            self._note_send(head.chat, now)
            await self._failed(batch, exc)
            return
        self._note_send(head.chat, now)
        self.sends += 1
        with self.db.begin() as conn:
            repo.mark(conn, ids, "sent", at=now)
            if head.member_id is not None:
                # A private message got through: a friend of this account.
                repo.set_reachable(conn, head.member_id, True, self.cohorts)
        if self.on_sent is not None:
            self.on_sent(batch)

    def _note_send(self, chat: str, at: datetime) -> None:
        self._last_chat = chat
        self._last_at[chat] = at
        self._last_any = at
        self._window.append(at)

    async def _failed(self, batch: list[OutRow], exc: Exception) -> None:
        """Each row keeps its own count of attempts: a fresh row that travelled with one on
        its last try is retried on its own, not failed with it."""
        retry = exc.retry if isinstance(exc, SendError) else True
        maybe_sent = isinstance(exc, SendError) and exc.maybe_sent
        error = str(exc)
        if isinstance(exc, SendError) and exc.not_friend and batch[0].member_id is not None:
            with self.db.begin() as conn:
                repo.mark(conn, [r.id for r in batch], "unreachable", error=error)
            log.info("%s is not the account's friend; private messages to them are held", batch[0].member_id)
            if self.on_not_friend is not None:
                for r in batch:
                    self.on_not_friend(r)
            return
        with self.db.begin() as conn:
            tried = repo.attempts(conn, [r.id for r in batch])
            if maybe_sent:
                again, done = [], batch
            elif retry:
                again = [r for r in batch if tried.get(r.id, 0) < self.pacing.retries]
                done = [r for r in batch if tried.get(r.id, 0) >= self.pacing.retries]
            else:
                again, done = [], batch
            if again:
                most = max(tried.get(r.id, 1) for r in again)
                delay = timedelta(seconds=5 * 2 ** (max(most, 1) - 1))
                log.warning("send to %s failed (%s); retrying in %s", batch[0].chat, exc, delay)
                repo.retry_later(conn, [r.id for r in again], self.clock.now() + delay, error)
            if done:
                status = "unknown" if maybe_sent else "failed"
                self.failed += len(done)
                log.error(
                    "send to %s %s after %d attempt(s): %s; text: %.60s",
                    batch[0].chat,
                    "may or may not have arrived" if maybe_sent else "failed for good",
                    max(tried.get(r.id, 1) for r in done),
                    exc,
                    done[0].text,
                )
                repo.mark(conn, [r.id for r in done], status, error=error)
        if done and self.on_failed is not None:
            self.on_failed(done, error, maybe_sent)
