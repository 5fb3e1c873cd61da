"""Message routing: what a message to the bot is (a command, a check-in, or nothing for us)
and where it goes. Commands are answered through the registry in bot/commands.py; check-ins
are counted in bot/checkins.py; roll calls name them later (bot/rollcall.py); anything else
may be a keyword reply's question or one for the operators (bot/replies.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import checkins, commands, templates
from bot import operator_commands as _operator_commands  # noqa: F401  (registers them)
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.friends import Friends
from bot.i18n import N_
from bot.replies import Replies
from bot.rollcall import RollCalls
from bot.roster import Roster
from bot.survey import Surveys
from bot.transports.base import Incoming, Member
from storage import repo
from storage.models import OPERATOR

log = logging.getLogger(__name__)

COMMAND_COOLDOWN = timedelta(seconds=30)  # the same member asking the same thing again
REPLIES_PER_MINUTE = 3  # answers to one member, group and private together
# For members, in the playbook's language (Playbook.tr).
OPERATOR_CHECKIN = N_("Got it! Check-ins by the assistants do not count")
GO_TO_GROUP = N_('To check in, send "{keyword}" in the group. In private you can send: {commands}')


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
        self._recent = {m: ts for m, ts in self._recent.items() if ts and now - ts[-1] < timedelta(minutes=1)}


class Router:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        roster: Roster,
        rollcalls: RollCalls,
        runs: dict[str, CohortRun],
        ack_window: float,
        wake: Callable[[], None],
    ) -> None:
        self.db = db
        self.clock = clock
        self.roster = roster
        self.rollcalls = rollcalls
        self.runs = runs  # by room id, shared with the engine
        self.ack_window = ack_window
        self.wake = wake  # the outbox: something was queued
        self.limiter = ReplyLimiter()
        self.friends: Friends | None = None  # set by the engine
        self.surveys: Surveys | None = None  # set by the engine
        self.desk = commands.Desk(runs=runs)  # the engine fills in the rest
        self.replies: Replies | None = None  # set by the engine: keyword replies, questions

    async def on_message(self, msg: Incoming, bot_id: str) -> None:
        if msg.sender.id == bot_id:
            return  # our own sends come back as messages
        now = self.clock.now()
        if msg.room_id is None:
            await self._direct(msg, now)
            return
        run = self.runs.get(msg.room_id)
        if run is None:
            return
        role = self.roster.role(msg.sender.id)
        spoke = self._spoke(run, msg, now) if role != OPERATOR else None
        text = checkins.strip_bot_mention(msg.text, self.roster.bot_names(), msg.mentions_bot)
        if not text:
            self._count_alone(spoke)
            return
        if role == OPERATOR and msg.mentions_bot and self._operator(msg, text, now, run):
            return
        command, args = self._command(run, text)
        match = None if command else checkins.match_track(run, text)
        if command is None and match is None:
            self._count_alone(spoke)
            if self.replies is not None:
                self.replies.heard(run, msg, text, now)
            return
        outcome = None
        with self.db.begin() as conn:
            self.roster.ensure(conn, run, msg.sender, now)
            if spoke is not None:  # in the check-in's own transaction: no extra commit
                repo.count_message(conn, *spoke)
            if command is not None:
                if commands.allowed(command, role) and self.limiter.allow(msg.sender.id, command, now):
                    reply = commands.answer(command, self._asked(conn, run, msg.sender, now, args))
                    if repo.reachable(conn, run.id, msg.sender.id):
                        # Answered privately: the answer is for the one who asked, and the
                        # group stays quiet.
                        repo.enqueue(conn, run.id, member_id=msg.sender.id, text=reply, kind="reply", now=now)
                    else:
                        repo.enqueue(
                            conn,
                            run.id,
                            room_id=run.room_id,
                            text=reply,
                            kind="reply",
                            mentions=[msg.sender.id],
                            now=now,
                        )
            elif role == OPERATOR:
                # Not counted, and not worth a group message: told privately, rarely.
                if self.limiter.allow(msg.sender.id, "operator-checkin", now):
                    repo.enqueue(
                        conn,
                        run.id,
                        member_id=msg.sender.id,
                        text=run.playbook.messages.operator_checkin or run.playbook.tr(OPERATOR_CHECKIN),
                        kind="reply",
                        now=now,
                    )
            else:
                assert match is not None
                outcome = checkins.count_checkin(
                    conn, run, msg.sender, match[0], min(msg.at, now), now, self.ack_window, msg.text.strip()
                )
        if outcome in (checkins.Outcome.COUNTED, checkins.Outcome.NOTICE) or command == "makeup":
            self.rollcalls.request(run)
        self.wake()

    @staticmethod
    def _spoke(run: CohortRun, msg: Incoming, now: datetime) -> tuple[str, str, int] | None:
        """(cohort, member, day) of a member's group message inside the cohort's days, for the
        report's message counts; None outside them."""
        day = run.day(min(msg.at, now))
        return (run.id, msg.sender.id, day) if 1 <= day <= run.cal.days else None

    def _count_alone(self, spoke: tuple[str, str, int] | None) -> None:
        """Count a message that is neither a command nor a check-in (its own transaction)."""
        if spoke is not None:
            with self.db.begin() as conn:
                repo.count_message(conn, *spoke)

    def _asked(
        self, conn: Connection, run: CohortRun, member: Member, now: datetime, args: tuple[str, ...] = ()
    ) -> commands.Asked:
        return commands.Asked(conn, run, member.id, member.shown, now, args)

    @staticmethod
    def _command(run: CohortRun, text: str) -> tuple[str | None, tuple[str, ...]]:
        """The command a message is (its whole text, or "补卡 2": a word and what follows)."""
        if found := run.command_words.get(text):
            return found, ()
        with_args = run.command_with_args(text)
        return with_args if with_args is not None else (None, ())

    def _operator(self, msg: Incoming, text: str, now: datetime, run: CohortRun | None = None) -> bool:
        """An operator's command (the role is the sender's id's, from the config): answered
        privately, in the operators' language. False if the text is not one."""
        asked = commands.operator_command(checkins.normalize(text).strip())
        runs = list(self.runs.values())
        if asked is None or not runs:
            return False
        name, args = asked
        # Not rate-limited like members: operators are listed by id in the config, and the
        # answer goes to them alone, never to the group.
        run = run or runs[0]
        with self.db.begin() as conn:
            a = commands.Asked(conn, run, msg.sender.id, msg.sender.shown, now, args, self.desk)
            reply = commands.answer(name, a)
            repo.enqueue(conn, run.id, member_id=msg.sender.id, text=reply, kind="reply", now=now)
        log.info("operator %s: %s %s", msg.sender.id, name, " ".join(args))
        for r in runs:  # a resume lets held roll calls go; a make-up waits to be named
            self.rollcalls.request(r)
        self.wake()
        return True

    async def _direct(self, msg: Incoming, now: datetime) -> None:
        operator = self.roster.role(msg.sender.id) == OPERATOR and msg.text.strip()
        if operator and self._operator(msg, msg.text, now):
            return
        stranger = msg.text.strip() and not self.roster.cohorts_of(msg.sender.id, self.runs.values())
        if stranger and self.roster.may_reread_for(msg.sender.id, now):
            # Maybe a member who joined without a join event: look at the rooms again.
            for run in list(self.runs.values()):
                await self.roster.reconcile_now(run)
        runs = self.roster.cohorts_of(msg.sender.id, self.runs.values())
        if runs and self.friends is not None:
            with self.db.begin() as conn:
                released = self.friends.heard_from(conn, msg.sender.id, now)
            if released:
                self.wake()
        text = checkins.normalize(msg.text).strip()
        if not runs or not text:
            return
        run = runs[0]
        command, args = self._command(run, text)
        match = None if command is not None else checkins.match_track(run, text)
        if command is None and self.surveys and self.surveys.answer(runs, msg.sender, msg.text, now):
            self.wake()  # an answer to the member's open question (bot/survey.py says what is one)
            return
        if command is None and match is None:
            if self.replies is not None:
                self.replies.heard_privately(run, msg, text, now)
            return
        role = self.roster.role(msg.sender.id)
        if command is not None and not commands.allowed(command, role):
            return
        if not self.limiter.allow(msg.sender.id, command or "", now):
            return
        with self.db.begin() as conn:
            if command is not None:
                reply = commands.answer(command, self._asked(conn, run, msg.sender, now, args))
            else:
                assert match is not None
                c = run.playbook.commands
                reply = templates.render(
                    run.playbook.tr(GO_TO_GROUP),
                    {
                        "keyword": match[1],
                        "commands": run.playbook.tr(checkins.LIST_SEPARATOR).join(
                            w[0] for w in (c.progress, c.leaderboard, c.today, c.help)
                        ),
                    },
                )
            # Behind the group's own traffic: one member's private chat never holds up the group.
            repo.enqueue(conn, run.id, member_id=msg.sender.id, text=reply, kind="reply", now=now, priority=1)
        if command == "makeup":
            self.rollcalls.request(run)  # named in the roll call, as a make-up
        self.wake()
