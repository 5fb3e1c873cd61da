"""Roll calls (打卡播报): where the group hears that check-ins counted.

Instead of one reply per check-in, one group message names everyone newly counted since the
last one, grouped by day and track with the day's tally, in the spirit of a WeChat 接龙 list:

    ✅ 第2天打卡播报
    晨读 +8（今日 31/60）：小明、小红、…
    正课 +5（今日 12/60）：…
    🎁 解锁资料大礼包：小明

The list of who waits to be named is the database (check-ins and reward grants without
``named_at``), so a restart loses none; composing the message and marking them named happen
in one transaction. At most one roll call per cohort every ``ack_every_minutes``: the first
goes out a fold window after a check-in that follows a quiet spell, later ones wait for the
interval, and none goes out in quiet hours (what waits goes into the first one after).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import templates
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.i18n import N_
from storage import repo

log = logging.getLogger(__name__)

# Texts for members: English msgids, said in the playbook's language (Playbook.tr).
TITLE = N_("✅ Day {day} check-ins")
LINE = N_("{track} +{count} (today {done}/{total}): {names}")
REWARD_LINE = N_("🎁 {reward} unlocked: {names}")
NAMES_SEPARATOR = N_(", ")
# A numbered tail keeps the parts of a long message from being near-identical texts in a burst.
PART = N_(" ({i}/{n})")
MAKEUP = N_("{name} (make-up)")
MAX_CHARS = 900  # one roll call message; a longer list continues in the next one
FOOTERS = {
    "too_late": N_("⏰ {track} closed at {until} today; not counted this time: {names}"),
    "not_today": N_("📅 Today is not a {track} day; not counted this time: {names}"),
    "ended": N_("🌟 {track} check-ins are over, thank you for keeping at it: {names}"),
}


@dataclass(frozen=True)
class QuietHours:
    """Local times between which the group gets no roll calls or welcomes."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight

    def after(self, local: datetime) -> datetime:
        """The first local moment at or after ``local`` outside quiet hours."""
        if not self.contains(local.timetz().replace(tzinfo=None)):
            return local
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        return end if end > local else end + timedelta(days=1)


@dataclass(frozen=True)
class RollCallSettings:
    every: timedelta = timedelta(minutes=20)
    fold_seconds: float = 3.0
    mentions: bool = False  # @-mention the named members (small groups only)
    max_mentions: int = 20
    quiet: QuietHours | None = None
    max_wait: timedelta | None = None  # set: instead of longest_wait(), whatever the group's size


def compose(
    conn: Connection, run: CohortRun, now: datetime, mentions: bool, max_mentions: int
) -> tuple[list[tuple[str, list[str]]], datetime | None]:
    """The roll call's messages (text, ids to @) for what waits now, and the time of the
    newest thing it names (None: nothing waits)."""
    pb = run.playbook
    checkins = repo.unnamed_checkins(conn, run.id)
    grants = repo.unnamed_grants(conn, run.id)
    notices = repo.footer_notices(conn, run.id)
    if not checkins and not grants and not notices:
        return [], None
    newest = max([u.at for u in (*checkins, *grants)], default=now)
    per_line = max_mentions if mentions else 10_000
    sep = pb.tr(NAMES_SEPARATOR)
    lines: list[tuple[str, list[str]]] = []  # (line, member ids it names)
    days = sorted({u.day for u in checkins}) or [run.day(now)]
    for day in days:
        todays = [u for u in checkins if u.day == day]
        if not todays:
            continue
        lines.append(
            (
                templates.render(
                    pb.messages.roll_call_title or pb.tr(TITLE), {"day": day, "playbook": pb.name}
                ),
                [],
            )
        )
        for tid, track in pb.tracks.items():
            named = [u for u in todays if u.key == tid]
            if not named:
                continue
            done, total = repo.day_counts(conn, run.id, tid, day)
            values = {
                "track": track.name,
                "count": len(named),
                "done": done,
                "total": total,
                "day": day,
                "playbook": pb.name,
            }
            lines += _name_lines(track.roll_call or pb.tr(LINE), values, named, sep, per_line, pb.tr(MAKEUP))
    for r in pb.rewards:
        named = [u for u in grants if u.key == r.id]
        if named:
            line = pb.messages.roll_call_reward or pb.tr(REWARD_LINE)
            lines += _name_lines(line, {"reward": r.name, "playbook": pb.name}, named, sep, per_line)
    for reason, template in FOOTERS.items():
        for tid, track in pb.tracks.items():
            told = [(mid, name) for mid, name, t, _, why in notices if t == tid and why == reason]
            if told:
                until = f"{track.until:%H:%M}" if track.until else ""
                text = pb.tr(template).replace("{until}", until)
                people = [repo.Unnamed(mid, name, tid, 0, now) for mid, name in told]
                lines += [(line, []) for line, _ in _name_lines(text, {"track": track.name}, people, sep)]
    return _pack(lines, mentions, max_mentions, pb.tr(PART)), newest


def _name_lines(
    template: str,
    values: dict[str, object],
    named: list[repo.Unnamed],
    sep: str,
    per_line: int = 10_000,
    makeup: str = "",
) -> list[tuple[str, list[str]]]:
    """The template's line with {names} filled; several lines if the names are too many for
    one message, or more than ``per_line`` (the @-mention limit, when names are mentions);
    each line then repeats the head."""
    seen: dict[str, str] = {}
    for u in named:
        seen.setdefault(u.member_id, makeup.format(name=u.name) if u.makeup and makeup else u.name)
    out: list[tuple[str, list[str]]] = []
    chunk: list[tuple[str, str]] = []
    head = len(templates.render(template, {**values, "names": ""}))
    size = head
    for mid, name in seen.items():
        if chunk and (size + len(name) + 1 > MAX_CHARS - 40 or len(chunk) >= per_line):
            out.append(
                (
                    templates.render(template, {**values, "names": sep.join(n for _, n in chunk)}),
                    [m for m, _ in chunk],
                )
            )
            chunk, size = [], head
        chunk.append((mid, name))
        size += len(name) + 1
    if chunk:
        out.append(
            (
                templates.render(template, {**values, "names": sep.join(n for _, n in chunk)}),
                [m for m, _ in chunk],
            )
        )
    return out


def _pack(
    lines: list[tuple[str, list[str]]], mentions: bool, max_mentions: int, part: str
) -> list[tuple[str, list[str]]]:
    """Lines into messages of at most MAX_CHARS (and, with mentions, max_mentions @s)."""
    messages: list[tuple[str, list[str]]] = []
    text: list[str] = []
    ids: list[str] = []
    for line, named in lines:
        named = named if mentions else []
        too_long = text and sum(len(t) + 1 for t in text) + len(line) > MAX_CHARS
        too_many = mentions and ids and len(ids) + len(named) > max_mentions
        if too_long or too_many:
            messages.append(("\n".join(text), ids))
            text, ids = [], []
        text.append(line)
        ids += [m for m in named if m not in ids]
    if text:
        messages.append(("\n".join(text), ids))
    if len(messages) > 1:
        n = len(messages)
        messages = [(t + part.format(i=i, n=n), m) for i, (t, m) in enumerate(messages, 1)]
    return messages


def worth(learners: int) -> int:
    """How many names make a roll call worth a message: about 1.5·√n (12 in a group of 60, 34 in
    one of 500). A roll call naming one or two people every few minutes is one reply per
    check-in again, which is what members mute."""
    return max(3, math.ceil(1.5 * math.sqrt(max(learners, 1))))


def longest_wait(learners: int) -> timedelta:
    """How long a name may wait for enough others: 25 minutes in groups of 320 and more,
    longer in small groups, where check-ins are few and far between (2 hours for 60)."""
    return timedelta(minutes=max(25.0, min(120.0, 8000 / max(learners, 1))))


class RollCalls:
    """When each cohort's next roll call goes out, and composing it.

    The first check-in after a quiet spell (no roll call for SPELL) is named a fold window
    later: the morning's first names encourage the rest. After that a roll call goes once it
    can name enough people (worth()) or its oldest name has waited long enough
    (longest_wait()), never sooner than `ack_every_minutes` after the last one, and never in
    quiet hours."""

    SPELL = timedelta(hours=6)  # overnight, typically: the morning's first check-in is named at once

    def __init__(
        self, db: Database, clock: Clock, settings: RollCallSettings, wake: Callable[[], None]
    ) -> None:
        self.db = db
        self.clock = clock
        self.settings = settings
        self.wake = wake
        self._waiting: dict[str, tuple[datetime, asyncio.Task[None]]] = {}
        # Names that arrived since the plan was made, and how many make a roll call worth it
        # (so that a check-in asks the database only when it may change the plan).
        self._arrived: dict[str, int] = {}
        self._worth: dict[str, int] = {}
        self._last: dict[str, datetime | None] = {}

    def longest_wait(self, learners: int) -> timedelta:
        return self.settings.max_wait or longest_wait(learners)

    def every(self, run: CohortRun) -> timedelta:
        minutes = run.playbook.ack_every_minutes
        return timedelta(minutes=minutes) if minutes is not None else self.settings.every

    def due(self, run: CohortRun, now: datetime) -> datetime | None:
        """When the next roll call should go, for what waits now (None: nothing waits)."""
        with self.db.connect() as conn:
            if repo.paused(conn, run.id) is not None:
                return None  # the names wait in the database for the resume
            last = repo.last_rollcall(conn, run.id)
            waiting = repo.waiting_since(conn, run.id)
            if waiting is None:
                return None
            count, oldest = waiting
            learners = repo.present_count(conn, run.id)
        self._worth[run.id] = worth(learners)
        self._arrived[run.id] = count
        self._last[run.id] = last
        soon = now + timedelta(seconds=self.settings.fold_seconds)
        if last is None or now - last >= self.SPELL:
            at = soon
        else:
            at = max(last + self.every(run), oldest + self.longest_wait(learners))
            if count >= worth(learners):
                at = max(last + self.every(run), soon)
        later = self.outside_quiet(run, max(at, soon))
        if later != max(at, soon):
            # Held over quiet hours: the night's names wait a little longer for the morning's
            # first ones, so the morning starts with one roll call, not two.
            later += self.every(run)
        at = later
        # A reminder due soon carries the names in its own message: wait for it, if nobody
        # then waits longer than they may.
        limit = min(at + self.every(run), max(at, oldest + self.longest_wait(learners)))
        carrier = next(
            (p.due for p in run.plan if p.item.kind == "remind" and at <= p.due <= limit),
            None,
        )
        return carrier + timedelta(minutes=1) if carrier is not None else at

    def outside_quiet(self, run: CohortRun, at: datetime) -> datetime:
        quiet = self.settings.quiet
        if quiet is None:
            return at
        return quiet.after(run.cal.local(at)).astimezone(at.tzinfo)

    def request(self, run: CohortRun) -> None:
        """Something new waits to be named: make sure a roll call is on its way, at the
        right time (sooner, if enough names have now gathered)."""
        planned = self._waiting.get(run.id)
        last = self._last.get(run.id)
        spell = last is None or self.clock.now() - last >= self.SPELL  # the first is named at once
        if planned is not None and not planned[1].done() and not spell:
            self._arrived[run.id] = self._arrived.get(run.id, 0) + 1
            if self._arrived[run.id] != self._worth.get(run.id, 0):
                # The plan stands: too few names yet to bring it forward, or brought forward
                # already when they became enough.
                return
        at = self.due(run, self.clock.now())
        if at is None:
            return
        planned = self._waiting.get(run.id)
        if planned is not None and not planned[1].done():
            if planned[0] <= at:
                return
            planned[1].cancel()
        self._waiting[run.id] = (at, asyncio.create_task(self._later(run, at), name=f"rollcall-{run.id}"))

    async def _later(self, run: CohortRun, at: datetime) -> None:
        while True:
            await asyncio.sleep(max((at - self.clock.now()).total_seconds(), 0))
            try:
                # Asked again now: a reminder may have named them meanwhile, or the wait may
                # have grown (quiet hours).
                due = self.due(run, self.clock.now())
                if due is None:
                    break
                slack = timedelta(seconds=self.settings.fold_seconds + 1)
                if due > self.clock.now() + slack:
                    at = due
                    self._waiting[run.id] = (at, self._waiting[run.id][1])
                    continue
                self.send(run)
            except Exception:
                log.exception("%s: could not compose the roll call; trying again in a minute", run.id)
                at = self.clock.now() + timedelta(minutes=1)
                continue
            break
        self._waiting.pop(run.id, None)
        self.request(run)  # what arrived meanwhile

    def send(self, run: CohortRun) -> int:
        """Compose and queue the roll call now; returns how many messages."""
        now = self.clock.now()
        with self.db.begin() as conn:
            n = self.queue(conn, run, now)
        if n:
            log.info("%s: roll call queued (%d message(s))", run.id, n)
            self.wake()
        return n

    def queue(self, conn: Connection, run: CohortRun, now: datetime, head: str = "") -> int:
        """Queue the roll call in this transaction (``head``: text it follows, e.g. a
        reminder's, in the same message); returns how many messages."""
        mentions = self.settings.mentions or run.playbook.roll_call_mentions
        messages, newest = compose(conn, run, now, mentions, self.settings.max_mentions)
        if not messages or newest is None:
            return 0
        for i, (text, ids) in enumerate(messages):
            if i == 0 and head:
                text = f"{head}\n\n{text}"
            repo.enqueue(conn, run.id, room_id=run.room_id, kind="rollcall", now=now, text=text, mentions=ids)
        repo.mark_named(conn, run.id, now, max(newest, now))
        repo.set_last_rollcall(conn, run.id, now)
        return len(messages)

    def planned(self, run: CohortRun) -> datetime | None:
        """When the next roll call is planned to go, if one is."""
        found = self._waiting.get(run.id)
        return found[0] if found is not None and not found[1].done() else None

    def ride_along(self, conn: Connection, run: CohortRun, now: datetime) -> str | None:
        """The roll call as lines to append to a message going to the group anyway (a
        reminder), if it fits in one message; what it names is marked named."""
        mentions = self.settings.mentions or run.playbook.roll_call_mentions
        messages, newest = compose(conn, run, now, mentions, self.settings.max_mentions)
        if len(messages) != 1 or newest is None or messages[0][1]:
            return None
        repo.mark_named(conn, run.id, now, max(newest, now))
        repo.set_last_rollcall(conn, run.id, now)
        return messages[0][0]

    def send_soon_ones(self, runs: list[CohortRun], within: timedelta) -> None:
        """At a graceful stop: a roll call due within ``within`` goes now rather than after the
        next start."""
        now = self.clock.now()
        for run in runs:
            planned = self.planned(run)
            if planned is not None and planned - now <= within:
                self.send(run)

    def cancel(self) -> None:
        for _, task in self._waiting.values():
            task.cancel()

    async def stop(self) -> None:
        for _, task in self._waiting.values():
            task.cancel()
        for _, task in self._waiting.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._waiting.clear()
