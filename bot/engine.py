"""What happens when a message arrives or a schedule item is due. Knows no network: it
reads events from the Transport port, writes the database, and leaves sending to the
outbox. Check-ins are counted in bot/checkins.py; items are composed in bot/items.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import checkins, commands, items, templates
from bot.alerts import OperatorAlerts
from bot.clock import Clock, within
from bot.cohort import CohortRun
from bot.outbox import Outbox, Pacing
from bot.plan import PlannedItem
from bot.transports.base import Delivered, Event, Incoming, Joined, Left, Member, Reconnected, Transport
from storage import repo
from storage.models import LEARNER, OPERATOR

log = logging.getLogger(__name__)

COMMAND_COOLDOWN = timedelta(seconds=30)  # the same member asking the same thing again
REPLIES_PER_MINUTE = 3  # answers to one member, group and private together
REREAD_AFTER_DM = timedelta(minutes=10)  # per unknown sender
RECONCILE_TIMEOUT = timedelta(seconds=60)
EARLY_WELCOME = "👋 欢迎 {name} 加入{playbook}！我们将在 {start} 正式开营，发送「帮助」看看我能做什么～"
OPERATOR_CHECKIN = "收到～助教的打卡不计入统计哦"
GO_TO_GROUP = "打卡请在群里发送「{keyword}」哦～私聊可以发送：{commands}"


class ReplyLimiter:
    """Flood control for answers to one member, in the group and in private alike: the same
    question again within COMMAND_COOLDOWN is not answered (the answer is still on screen),
    and no member gets more than REPLIES_PER_MINUTE answers a minute. Every answer spends
    the account's send budget, which the whole group shares."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], datetime] = {}
        self._recent: dict[str, list[datetime]] = {}

    def allow(self, member_id: str, command: str, now: datetime) -> bool:
        if len(self._last) > 10_000:
            self._forget(now)
        last = self._last.get((member_id, command))
        if last is not None and now - last < COMMAND_COOLDOWN:
            return False
        recent = [t for t in self._recent.get(member_id, ()) if now - t < timedelta(minutes=1)]
        if len(recent) >= REPLIES_PER_MINUTE:
            return False
        self._last[(member_id, command)] = now
        self._recent[member_id] = [*recent, now]
        return True

    def _forget(self, now: datetime) -> None:
        self._last = {k: t for k, t in self._last.items() if now - t < COMMAND_COOLDOWN}
        self._recent = {
            m: ts for m, ts in self._recent.items() if ts and now - ts[-1] < timedelta(minutes=1)
        }


@dataclass(frozen=True)
class Settings:
    operators: frozenset[str] = frozenset()
    bot_name: str | None = None
    pacing: Pacing = field(default_factory=Pacing)
    grace: timedelta = timedelta(minutes=10)


class Engine:
    def __init__(
        self, db: Database, clock: Clock, transport: Transport, outbox: Outbox, settings: Settings
    ) -> None:
        self.db = db
        self.clock = clock
        self.transport = transport
        self.outbox = outbox
        self.settings = settings
        self.runs: dict[str, CohortRun] = {}  # by room id
        self._known: dict[str, set[str]] = {}  # cohort id -> member ids known present
        self.limiter = ReplyLimiter()
        self.alerts = OperatorAlerts(db, clock, settings.operators, outbox.wake)
        self._reread: dict[str, datetime] = {}
        self._fire_lock = asyncio.Lock()
        self._bot_names: list[str] = []

    # --- set-up ---------------------------------------------------------------------

    def role(self, member_id: str) -> str:
        return OPERATOR if member_id in self.settings.operators else LEARNER

    def bot_names(self) -> list[str]:
        """How members @ the bot: the configured name, then its names in the rooms."""
        return [n for n in (self.settings.bot_name, *self._bot_names) if n]

    async def add_cohort(self, run: CohortRun) -> None:
        try:
            run.room_id = await self.transport.resolve_room(run.room)
        except LookupError:
            # Renamed since the last start? The room id found then still names the group.
            with self.db.connect() as conn:
                known = repo.room_id_of(conn, run.id)
            if known is None or known == run.room:
                raise
            run.room_id = await self.transport.resolve_room(known)
            log.warning(
                "%s: no group is called %r any more; using the group it was found as before "
                "(%s). Update `room` in the config",
                run.id,
                run.room,
                known,
            )
        with self.db.begin() as conn:
            repo.ensure_cohort(
                conn, run.id, run.playbook.name, run.room, run.cal.start, str(run.cal.zone), self.clock.now()
            )
            repo.set_room_id(conn, run.id, run.room_id)
        self.runs[run.room_id] = run
        await self.reconcile(run)

    async def reconcile(self, run: CohortRun) -> None:
        """Make the stored member list match the room's (join events are unreliable)."""
        asked = self.clock.now()
        found = await self.transport.members(run.room_id)
        bot_id = self.transport.bot_id()
        for m in found:
            if m.id == bot_id:
                self._bot_names = list(dict.fromkeys(n for n in (*self._bot_names, m.name, m.alias) if n))
        people = [(m.id, m.name, m.alias) for m in found if m.id != bot_id]
        with self.db.begin() as conn:
            if not people and repo.present_ids(conn, run.id):
                # A gateway still syncing can answer with an empty room; that is not everyone
                # leaving (asked of the database: after a restart nothing is in memory yet).
                log.warning("%s: the room's member list came back empty; keeping the stored one", run.id)
                self._known[run.id] = repo.present_ids(conn, run.id)
                return
            joined, left = repo.sync_members(
                conn, run.id, people, self.clock.now(), self.settings.operators, read_at=asked
            )
            self._known[run.id] = repo.present_ids(conn, run.id)
        if joined or left:
            log.info("%s: %d member(s) present, %d new, %d gone", run.id, len(people), len(joined), len(left))

    async def reconcile_now(self, run: CohortRun) -> None:
        """The periodic re-read: bounded, and one log line when the network is not there."""
        try:
            await within(self.reconcile(run), RECONCILE_TIMEOUT.total_seconds())
        except Exception as exc:
            log.warning(
                "%s: could not re-read the member list (%s); trying again later", run.id, type(exc).__name__
            )

    # --- incoming events ----------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        try:
            if isinstance(event, Incoming):
                await self._on_message(event)
            elif isinstance(event, Joined):
                self._on_joined(event)
            elif isinstance(event, Left):
                self._on_left(event)
            elif isinstance(event, Reconnected):
                await self._on_reconnected(event)
            elif isinstance(event, Delivered):
                self.alerts.delivered(event.room_id, event.member_id, event.text)
        except Exception:
            # One bad event must not take the bot down; the database transaction rolled back.
            log.exception("could not handle %r", event)

    async def _on_message(self, msg: Incoming) -> None:
        if msg.sender.id == self.transport.bot_id():
            return  # our own sends come back as messages
        now = self.clock.now()
        at = min(msg.at, now)
        if msg.room_id is None:
            if msg.text.strip() and not self._runs_of(msg.sender.id) and self._may_reread(msg.sender.id, now):
                # Maybe a member who joined without a join event: look at the rooms again
                # (once in a while per sender: strangers writing must not hammer the gateway).
                for run in list(self.runs.values()):
                    await self.reconcile_now(run)
            self._on_direct(msg, now)
            return
        found = self.runs.get(msg.room_id)
        if found is None:
            return
        run = found
        text = checkins.strip_bot_mention(msg.text, self.bot_names(), msg.mentions_bot)
        if not text:
            return
        command = run.command_words.get(text)
        match = None if command else checkins.match_track(run, text)
        if command is None and match is None:
            return
        with self.db.begin() as conn:
            self._ensure_member(conn, run, msg.sender, now)
            if command is not None:
                self._reply_in_room(conn, run, msg.sender, command, now)
            elif self.role(msg.sender.id) == OPERATOR:
                repo.enqueue(
                    conn,
                    run.id,
                    room_id=run.room_id,
                    text=OPERATOR_CHECKIN,
                    kind="ack",
                    mentions=[msg.sender.id],
                    now=now,
                )
            else:
                assert match is not None
                # Outside the track's days (before day 1 too) the member is told why.
                checkins.count_checkin(
                    conn,
                    run,
                    msg.sender,
                    match[0],
                    at,
                    now,
                    self.settings.pacing.ack_window_seconds,
                )
        self.outbox.wake()

    def _ensure_member(self, conn: Connection, run: CohortRun, member: Member, now: datetime) -> None:
        known = self._known.setdefault(run.id, set())
        if member.id not in known:
            repo.member_joined(conn, run.id, member.id, member.name, member.alias, now, self.role(member.id))
            known.add(member.id)

    def _reply_in_room(
        self, conn: Connection, run: CohortRun, sender: Member, command: str, now: datetime
    ) -> None:
        if not self.limiter.allow(sender.id, command, now):
            return
        text = self._answer(conn, run, sender, command, now)
        repo.enqueue(
            conn, run.id, room_id=run.room_id, text=text, kind="reply", mentions=[sender.id], now=now
        )

    def _answer(self, conn: Connection, run: CohortRun, sender: Member, command: str, now: datetime) -> str:
        if command == "progress":
            return commands.progress(conn, run, sender.id, sender.shown, now)
        if command == "leaderboard":
            return commands.leaderboard(conn, run)
        if command == "today":
            return commands.today(run, now)
        return commands.help_text(run)

    def _on_direct(self, msg: Incoming, now: datetime) -> None:
        text = msg.text.strip()
        runs = self._runs_of(msg.sender.id)
        if not runs or not text:
            return
        run = runs[0]
        text = checkins.normalize(text)
        command = run.command_words.get(text)
        match = None if command is not None else checkins.match_track(run, text)
        if (command is None and match is None) or not self.limiter.allow(msg.sender.id, command or "", now):
            return
        with self.db.begin() as conn:
            if command is not None:
                reply = self._answer(conn, run, msg.sender, command, now)
            else:
                assert match is not None
                c = run.playbook.commands
                reply = templates.render(
                    GO_TO_GROUP,
                    {
                        "keyword": match[1],
                        "commands": "、".join(w[0] for w in (c.progress, c.leaderboard, c.today, c.help)),
                    },
                )
            # Behind the group's own traffic: one member's private chat never holds up the group.
            repo.enqueue(conn, run.id, member_id=msg.sender.id, text=reply, kind="reply", now=now, priority=1)
        self.outbox.wake()

    def _may_reread(self, member_id: str, now: datetime) -> bool:
        last = self._reread.get(member_id)
        if last is not None and now - last < REREAD_AFTER_DM:
            return False
        self._reread[member_id] = now
        return True

    def _runs_of(self, member_id: str) -> list[CohortRun]:
        """The cohorts this member is in, the latest start first."""
        found = [r for r in self.runs.values() if member_id in self._known.get(r.id, ())]
        return sorted(found, key=lambda r: r.cal.start, reverse=True)

    def _on_joined(self, event: Joined) -> None:
        run = self.runs.get(event.room_id)
        if run is None:
            return
        now = self.clock.now()
        bot_id = self.transport.bot_id()
        with self.db.begin() as conn:
            for m in event.members:
                if m.id == bot_id:
                    continue
                new = repo.member_joined(conn, run.id, m.id, m.name, m.alias, event.at, self.role(m.id))
                self._known.setdefault(run.id, set()).add(m.id)
                day = run.day(now)
                if new and run.playbook.welcome and day <= run.playbook.days:
                    start = run.cal.start
                    # Groups fill up before day 1, when "今天是第-1天" would make no sense.
                    template = (
                        run.playbook.welcome
                        if day >= 1
                        else EARLY_WELCOME.replace("{start}", f"{start.month}月{start.day}日")
                    )
                    text = templates.render(
                        template, {"name": m.shown, "playbook": run.playbook.name, "day": day}
                    )
                    repo.enqueue(
                        conn,
                        run.id,
                        room_id=run.room_id,
                        text=text,
                        kind="welcome",
                        mentions=[m.id],
                        now=now,
                        not_before=now + timedelta(seconds=self.settings.pacing.ack_window_seconds),
                    )
        self.outbox.wake()

    def _on_left(self, event: Left) -> None:
        run = self.runs.get(event.room_id)
        if run is None:
            return
        with self.db.begin() as conn:
            for mid in event.member_ids:
                repo.member_left(conn, run.id, mid, event.at)
                self._known.get(run.id, set()).discard(mid)

    async def _on_reconnected(self, event: Reconnected) -> None:
        """After a reconnection the rooms are looked up again by their configured name: a
        gateway that logged in afresh may have given the room (and everyone) new ids."""
        if event.ids_changed:
            log.warning("the bot account has a new id after reconnecting; looking up the groups again")
        for old_id, run in list(self.runs.items()):
            try:
                new_id = await within(
                    self.transport.resolve_room(run.room), RECONCILE_TIMEOUT.total_seconds()
                )
            except Exception as exc:
                log.warning("%s: could not look up the group %r again (%s)", run.id, run.room, exc)
                continue
            if new_id != old_id:
                log.warning("%s: the group %r has a new id (%s, was %s)", run.id, run.room, new_id, old_id)
                run.room_id = new_id
                del self.runs[old_id]
                self.runs[new_id] = run
                with self.db.begin() as conn:
                    repo.set_room_id(conn, run.id, new_id)
                    repo.repoint_room(conn, run.id, old_id, new_id)
            await self.reconcile_now(run)
        self._reread.clear()
        self.outbox.wake()

    # --- schedule items -----------------------------------------------------------------

    async def fire(self, run: CohortRun, planned: PlannedItem) -> None:
        """Send a due item, once: claimed in the database in the same transaction that
        queues its messages."""
        async with self._fire_lock:
            try:
                await self._fire(run, planned)
            except Exception:
                log.exception("%s: item %s failed", run.id, planned.item_id)

    async def _fire(self, run: CohortRun, planned: PlannedItem) -> None:
        if self.clock.now() - planned.due > self.settings.grace:
            self.skip_missed(run, [planned])
            return
        if planned.item.kind != "post":
            try:
                await within(self.reconcile(run), RECONCILE_TIMEOUT.total_seconds())
            except Exception as exc:
                # The stored list is a day's joins and leaves behind at worst; better than
                # losing the item or holding it back.
                log.warning(
                    "%s: could not re-read the member list (%s); using the stored one",
                    run.id,
                    type(exc).__name__,
                )
        now = self.clock.now()
        if now - planned.due > self.settings.grace:  # waited too long for the network
            self.skip_missed(run, [planned])
            return
        with self.db.begin() as conn:
            if not repo.claim_item(conn, run.id, planned.item_id, planned.due, now):
                return
            n = items.queue_item(conn, run, planned, now, self.settings.pacing.max_mentions)
        late = now - planned.due
        log.info(
            "%s: %s (%s) queued %d message(s)%s",
            run.id,
            planned.item_id,
            planned.item.kind,
            n,
            f", {late} late" if late > timedelta(seconds=1) else "",
        )
        self.outbox.wake()

    def skip_missed(self, run: CohortRun, missed: Iterable[PlannedItem]) -> None:
        now = self.clock.now()
        with self.db.begin() as conn:
            for p in missed:
                if repo.claim_item(conn, run.id, p.item_id, p.due, now, status="missed"):
                    log.warning(
                        "%s: item %s was due at %s and is past the %s grace window; "
                        "skipped (send it by hand if it still matters)",
                        run.id,
                        p.item_id,
                        run.cal.local(p.due).strftime("%m-%d %H:%M"),
                        self.settings.grace,
                    )
