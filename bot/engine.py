"""What happens when an event arrives or a schedule item is due, assembled from the parts
that do it: the member roster (bot/roster.py), message routing (bot/router.py: commands and
check-ins), keyword replies and questions for the operators (bot/replies.py), items firing
(bot/firing.py), roll calls (bot/rollcall.py) and the operators' alerts (bot/alerts.py). Knows
no network: it reads events from the Transport port, writes the database, and leaves sending
to the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine as Database

from bot import checkins, i18n, templates
from bot.alerts import OperatorAlerts
from bot.clock import Clock, within
from bot.cohort import CohortRun
from bot.firing import Firing
from bot.friends import Friends
from bot.i18n import N_
from bot.link import GATEWAY_DOWN as GATEWAY_DOWN_STATE
from bot.link import LOGGED_OUT as LOGGED_OUT_STATE
from bot.link import Link
from bot.outbox import Outbox, Pacing
from bot.plan import PlannedItem
from bot.replies import Replies
from bot.rollcall import QuietHours, RollCalls, RollCallSettings
from bot.roster import RECONCILE_TIMEOUT, Roster
from bot.router import Router
from bot.survey import Surveys
from bot.transports.base import (
    Delivered,
    Disconnected,
    Event,
    Incoming,
    Joined,
    Left,
    LoggedOut,
    LoginNeeded,
    Reconnected,
    Transport,
)
from storage import repo

if TYPE_CHECKING:
    from bot.report import Report

log = logging.getLogger(__name__)

# For the operators (`状态`), in the config's language.
NO_EVENTS = N_("connected; nothing heard from WeChat yet")
LAST_EVENT = N_("connected; last heard from WeChat at {time}")
GATEWAY_DOWN = N_("the WeChat gateway has not answered since {time}; messages wait in the queue")
LOGGED_OUT = N_("the bot's WeChat account is logged out since {time}; scan the gateway's QR code")

WELCOME_RIDES = timedelta(minutes=30)
# For members, in the playbook's language (Playbook.tr).
EARLY_WELCOME = N_(
    '👋 Welcome to {playbook}, {name}! We start on {start}; send "{help}" to see what I can do'
)


@dataclass(frozen=True)
class Settings:
    operators: frozenset[str] = frozenset()
    bot_name: str | None = None
    pacing: Pacing = field(default_factory=Pacing)
    grace: timedelta = timedelta(minutes=10)
    # No roll calls or welcomes in the group then (config `quiet_hours`; None: none).
    quiet_hours: QuietHours | None = field(default_factory=lambda: QuietHours(time(22, 30), time(7, 30)))
    # The operators' alerts and lists to add as friends (config `language`).
    language: str = "zh"


def _rollcall_settings(settings: Settings) -> RollCallSettings:
    p = settings.pacing
    return RollCallSettings(
        every=timedelta(minutes=p.ack_every_minutes),
        fold_seconds=p.ack_window_seconds,
        mentions=p.roll_call_mentions,
        max_mentions=p.max_mentions,
        quiet=settings.quiet_hours,
        max_wait=timedelta(minutes=p.ack_max_wait_minutes) if p.ack_max_wait_minutes else None,
    )


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
        p = settings.pacing
        self.roster = Roster(db, clock, transport, settings.operators, settings.bot_name)
        self.alerts = OperatorAlerts(db, clock, settings.operators, outbox.wake, settings.language)
        self.rollcalls = RollCalls(db, clock, _rollcall_settings(settings), outbox.wake)
        self.router = Router(
            db, clock, self.roster, self.rollcalls, self.runs, p.ack_window_seconds, outbox.wake
        )
        self.friends = Friends(
            db,
            clock,
            settings.operators,
            self.runs,
            self.rollcalls.outside_quiet,
            outbox.wake,
            settings.language,
        )
        self.router.friends = self.friends
        # The playbook's questionnaire: asked on joins (and at its start), answered in private.
        self.surveys = Surveys(
            db, clock, self.rollcalls.outside_quiet, outbox.wake, lambda: self.settings.pacing.max_mentions
        )
        self.router.surveys = self.friends.surveys = self.surveys
        desk = self.router.desk
        desk.language = settings.language
        desk.max_mentions = p.max_mentions
        desk.queue_counts = lambda conn: repo.queue_counts(conn, [r.id for r in self.runs.values()])
        desk.connection = self._connection
        desk.picture = self._picture
        self._drawing: set[asyncio.Task[None]] = set()
        self.link = Link()  # the connection as operators see it (console, 状态)
        self.replies = Replies(
            db,
            clock,
            self.roster,
            transport.bot_id,
            self.router.limiter.allow,
            self.rollcalls.outside_quiet,
            outbox.wake,
            settings.operators,
            settings.language,
            p.max_mentions,
        )
        self.router.replies = self.replies
        self.firing = Firing(
            db, clock, self.roster, settings.grace, p.max_mentions, outbox.wake, self.rollcalls.ride_along
        )
        # Items fire one at a time, and a live edit (bot/reload.py) is swapped in between two
        # of them, never while one is being claimed.
        self.items_lock = asyncio.Lock()
        # Told about the connection and the account (lost, logged out, QR code, back): the
        # alerts outside WeChat (bot/incidents.py) listen here.
        self.watch: Callable[[Event], None] | None = None

    def apply_settings(self, settings: Settings) -> None:
        """A live config edit: pacing, quiet hours, operators and the grace window take effect
        for everything from now on (the bot's name is read at start only)."""
        self.settings = settings
        self.outbox.pacing = settings.pacing
        self.roster.operators = settings.operators
        self.alerts.operators = settings.operators
        self.friends.operators = settings.operators
        self.replies.operators = settings.operators
        self.replies.max_mentions = settings.pacing.max_mentions
        self.rollcalls.settings = _rollcall_settings(settings)
        self.router.ack_window = settings.pacing.ack_window_seconds
        self.firing.grace = settings.grace
        self.firing.max_mentions = settings.pacing.max_mentions
        self.router.desk.language = settings.language
        self.router.desk.max_mentions = settings.pacing.max_mentions

    def run_of(self, cohort_id: str) -> CohortRun | None:
        return next((r for r in self.runs.values() if r.id == cohort_id), None)

    # --- set-up ---------------------------------------------------------------------

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
            repo.set_calendar(conn, run.id, run.cal.days, run.cal.day_starts)
        self.runs[run.room_id] = run
        await self.roster.reconcile(run)
        with self.db.connect() as conn:
            waiting = run.id in repo.cohorts_waiting_for_rollcall(conn)
        if waiting:
            self.rollcalls.request(run)  # named by nobody before a restart
        self.replies.resume(run)  # questions that waited through a restart
        self.surveys.start(run)

    async def reconcile(self, run: CohortRun) -> None:
        await self.roster.reconcile(run)

    async def reconcile_now(self, run: CohortRun) -> None:
        """The periodic re-read (the scheduler's job)."""
        await self.roster.reconcile_now(run)
        self.surveys.poke(run)  # members who joined without a join event (QR code)

    async def stop(self) -> None:
        await self.rollcalls.stop()
        await self.replies.stop()
        await self.surveys.stop()
        if self._drawing:  # a picture being drawn is let finish: it is queued, and sent next time
            await asyncio.wait(set(self._drawing), timeout=10)

    # --- incoming events ----------------------------------------------------------------

    def _picture(self, run: CohortRun, member_id: str, report: Report) -> None:
        """An operator's `报告`: its picture, drawn in a thread, then queued to her."""
        task = asyncio.get_running_loop().create_task(self._send_picture(run, member_id, report))
        self._drawing.add(task)
        task.add_done_callback(self._drawing.discard)

    async def _send_picture(self, run: CohortRun, member_id: str, report: Report) -> None:
        from bot.report_charts import png_bytes

        try:
            data = await asyncio.to_thread(png_bytes, report)
        except Exception:
            log.exception("%s: could not draw the report's picture", run.id)
            return
        with self.db.begin() as conn:
            name = f"{run.id}-report.png"
            now = self.clock.now()
            repo.enqueue(conn, run.id, member_id=member_id, text=name, kind="image", now=now, image=data)
        self.outbox.wake()

    def _connection(self) -> str:
        """The connection as operators read it (`状态`)."""
        say = i18n.translation(i18n.normalize(self.settings.language) or "zh").gettext
        runs = list(self.runs.values())

        def local(at: datetime | None) -> str:
            if at is None:
                return "?"
            return f"{runs[0].cal.local(at) if runs else at:%m-%d %H:%M}"

        if self.link.state == GATEWAY_DOWN_STATE:
            return say(GATEWAY_DOWN).format(time=local(self.link.since))
        if self.link.state == LOGGED_OUT_STATE:
            return say(LOGGED_OUT).format(time=local(self.link.since))
        if self.link.last_event is None:
            return say(NO_EVENTS)
        return say(LAST_EVENT).format(time=local(self.link.last_event))

    async def on_event(self, event: Event) -> None:
        self.link.heard(event, self.clock.now())
        try:
            if isinstance(event, Incoming):
                await self.router.on_message(event, self.transport.bot_id())
            elif isinstance(event, Joined):
                self._on_joined(event)
            elif isinstance(event, Left):
                self._on_left(event)
            elif isinstance(event, Reconnected):
                self._tell_watch(event)
                await self._on_reconnected(event)
            elif isinstance(event, Delivered):
                self.alerts.delivered(event.room_id, event.member_id, event.text)
            elif isinstance(event, Disconnected | LoggedOut | LoginNeeded):
                self._tell_watch(event)
        except Exception:
            # One bad event must not take the bot down; the database transaction rolled back.
            log.exception("could not handle %r", event)

    def _tell_watch(self, event: Event) -> None:
        if self.watch is None:
            return
        try:
            self.watch(event)
        except Exception:  # an alert's trouble must never stop the bot handling the event
            log.exception("could not pass on %r", event)

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
                new = self.roster.joined(conn, run, m, event.at)
                day = run.day(now)
                if new and run.playbook.welcome and day <= run.playbook.days:
                    start = run.cal.start
                    # Groups fill up before day 1, when "今天是第-1天" would make no sense.
                    template = (
                        run.playbook.welcome
                        if day >= 1
                        else run.playbook.messages.early_welcome or run.playbook.tr(EARLY_WELCOME)
                    )
                    text = templates.render(
                        template,
                        {
                            "name": m.shown,
                            "playbook": run.playbook.name,
                            "day": day,
                            "start": run.playbook.tr(checkins.DATE).format(month=start.month, day=start.day),
                            "help": run.playbook.commands.help[0],
                        },
                    )
                    repo.enqueue(
                        conn,
                        run.id,
                        room_id=run.room_id,
                        text=text,
                        kind="welcome",
                        mentions=[m.id],
                        now=now,
                        not_before=self._welcome_at(run, now),
                    )
        self.surveys.poke(run)  # the questionnaire, if the playbook has one
        self.outbox.wake()

    def _welcome_at(self, run: CohortRun, now: datetime) -> datetime:
        """Joins close together share one post; none in quiet hours; and if a roll call is
        due within WELCOME_RIDES, the welcome travels in its message."""
        soon = self.rollcalls.outside_quiet(
            run, now + timedelta(seconds=self.settings.pacing.ack_window_seconds)
        )
        planned = self.rollcalls.planned(run)
        if planned is not None and soon < planned <= now + WELCOME_RIDES:
            return planned + timedelta(seconds=2)  # just after the roll call is composed
        return soon

    def _on_left(self, event: Left) -> None:
        run = self.runs.get(event.room_id)
        if run is None:
            return
        with self.db.begin() as conn:
            self.roster.left(conn, run, event.member_ids, event.at)

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
            await self.roster.reconcile_now(run)
        self.roster.forget_rereads()
        self.outbox.wake()

    # --- schedule items -----------------------------------------------------------------

    async def fire(self, run: CohortRun, planned: PlannedItem) -> None:
        async with self.items_lock:
            if planned not in run.plan:
                # A live edit moved or changed it while its job waited: the edit rescheduled
                # (or is sending) the new version.
                log.info("%s: %s was edited before it went out; the edit counts", run.id, planned.item_id)
                return
            await self.firing.fire(run, planned)

    def skip_missed(self, run: CohortRun, missed: Iterable[PlannedItem]) -> None:
        self.firing.skip_missed(run, missed)
