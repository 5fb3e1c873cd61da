"""`cohortbot report`: how a cohort is going, computed once (:func:`compute`) from the
database into plain numbers and name lists. The terminal tables, the xlsx and CSV files
(bot/report_views.py), the PNG and the HTML page (bot/report_charts.py) are views of one
:class:`Report`, so they always show the same numbers.

What is counted, in the words the report uses:

- *members*: the group's learners (operators and the bot are never counted);
- *in the group that day*: members in the group when the day's check-ins close (the next
  `day_starts`), as in the demo's tables; the completion rate of a day and track is its
  check-ins over them;
- *active that day*: sent a group message (check-ins and commands are messages too) or
  checked in on that day; next-day retention: of the members active one day, those active
  the next;
- *reminded*: @-mentioned by a reminder or nudged privately; reminders of one kind sent
  within an hour of the first form one round. A reminded member "checked in within 2 h"
  when one of their own check-ins followed their reminder within two hours; the comparison
  is the members of the same round who were not reminded and had not checked in yet that
  day, over the two hours from the round's first send;
- *tiers* (members in the group now): lurkers never spoke (no message, no check-in of their
  own); key members are the `key_members` with the most messages plus check-ins among those
  with at least `active_min_messages` messages; active members the rest of those; occasional
  members spoke less than that;
- *conversion*: bot/conversions.py's figures (members who left included), by these tiers
  (those who left as one more group) so that a tier means one thing throughout; the
  questionnaire's are bot/survey.py's.

The database may belong to a running bot: the caller reads it through storage.readonly."""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection, select

from bot import streaks
from bot.conversions import ConversionFigures, conversion_figures
from bot.i18n import N_, _
from bot.plan import Calendar
from bot.playbook import Playbook
from bot.survey import SurveyFigures, survey_figures
from storage import repo
from storage.models import LEARNER
from storage.repo import checkin_t, cohort_t, grant_t, member_t, out_t

REMINDER_WINDOW = timedelta(hours=2)
ROUND = timedelta(hours=1)  # reminders of one kind sent within this of the first: one round
REMINDER_KINDS = ("remind", "nudge")

# Tier codes, best first, with their names (translated where shown).
KEY, ACTIVE, OCCASIONAL, LURKER = "key", "active", "occasional", "lurker"
TIERS = {
    KEY: N_("key members"),
    ACTIVE: N_("active members"),
    OCCASIONAL: N_("occasional (spoke, below the threshold)"),
    LURKER: N_("lurkers (never spoke)"),
}
# Members who left have no tier; in the conversion by tier they are this one more group.
LEFT = "left"
# A member's status on one day of a track, in the per-member sheet ("": not in the group
# then, or the day is still open).
DONE, MAKEUP, ON_LEAVE, MISSED = "done", "makeup", "leave", "missed"


class ReportError(Exception):
    """What stops a report, in one line with what to do."""


@dataclass(frozen=True)
class Thresholds:
    """The config's `report:` section (its defaults without one)."""

    active_min_messages: int = 3
    key_members: int = 5


def percent(part: int, whole: int) -> float | None:
    """A share in percent with one decimal, the one rounding every view shows."""
    return round(100 * part / whole, 1) if whole else None


def per(part: int, whole: int) -> float | None:
    return round(part / whole, 1) if whole else None


@dataclass(frozen=True)
class Person:
    member_id: str
    name: str


@dataclass(frozen=True)
class Track:
    id: str
    name: str
    days: tuple[int, ...]  # its days, up to the report's last day


@dataclass(frozen=True)
class FunnelRow:
    day: int
    track: str  # the track's name
    done: int  # check-ins, make-ups included
    makeups: int
    in_group: int

    @property
    def rate(self) -> float | None:
        return percent(self.done, self.in_group)


@dataclass(frozen=True)
class DayRow:
    day: int
    in_group: int
    active: int
    messages: int
    checkins: int
    retained: int | None  # active this day and the next; None on the last day

    @property
    def active_rate(self) -> float | None:
        return percent(self.active, self.in_group)

    @property
    def per_member(self) -> float | None:
        return per(self.messages, self.in_group)

    @property
    def retention(self) -> float | None:
        return None if self.retained is None else percent(self.retained, self.active)

    def figures(self) -> tuple[int, int, float | None, int, float | None, int, int | None, float | None]:
        """In the group, active, active %, messages, per member, check-ins, active the next
        day, next-day retention %: every view's columns."""
        return (
            self.in_group,
            self.active,
            self.active_rate,
            self.messages,
            self.per_member,
            self.checkins,
            self.retained,
            self.retention,
        )


@dataclass(frozen=True)
class ReminderRow:
    kind: str  # remind (@ in the group) | nudge (private)
    day: int
    at: datetime  # local time of the round's first send
    reminded: int
    reminded_done: int  # checked in within 2 h of their reminder
    others: int  # not reminded, in the group, nothing checked in yet that day
    others_done: int  # checked in within 2 h of the round's first send

    @property
    def reminded_rate(self) -> float | None:
        return percent(self.reminded_done, self.reminded)

    @property
    def others_rate(self) -> float | None:
        return percent(self.others_done, self.others)

    def figures(self) -> tuple[int, int, float | None, int, int, float | None]:
        """Reminded, of them in 2 h, rate; others, of them in 2 h, rate: every view's columns."""
        return (
            self.reminded,
            self.reminded_done,
            self.reminded_rate,
            self.others,
            self.others_done,
            self.others_rate,
        )


@dataclass(frozen=True)
class RewardRow:
    reward: str  # its name
    people: tuple[Person, ...]  # in the order they earned it


@dataclass(frozen=True)
class StreakRow:
    track: str
    days: int  # the track's days so far
    full: int  # members in the group with every one of them checked in
    longest: int
    holders: tuple[Person, ...]  # who has the longest


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    name: str
    present: bool
    joined: datetime  # local
    left: datetime | None  # local
    tier: str  # a TIERS code; "" for members who left
    messages: int
    checkins: int
    statuses: tuple[str, ...]  # per column of Report.grid: DONE, MAKEUP, ON_LEAVE, MISSED or ""
    streaks: tuple[tuple[int, int], ...]  # per track: (current, longest)
    rewards: tuple[str, ...]
    muted: bool
    reachable: bool
    enrolled: bool


@dataclass(frozen=True)
class Report:
    cohort: str
    name: str  # the playbook's name
    room: str
    start: date
    days: int
    last_day: int  # the report covers days 1..last_day
    today_open: bool  # last_day has not closed yet
    zone: str
    as_of: datetime  # local
    thresholds: Thresholds
    tracks: tuple[Track, ...]
    funnel: tuple[FunnelRow, ...]
    hours: tuple[int, ...]  # check-ins per local hour, 0..23
    reminders: tuple[ReminderRow, ...]
    daily: tuple[DayRow, ...]
    tiers: tuple[tuple[str, tuple[Person, ...]], ...]  # (code, members), TIERS' order
    rewards: tuple[RewardRow, ...]
    streaks: tuple[StreakRow, ...]
    muted: tuple[Person, ...]
    unreachable: tuple[Person, ...]
    left: tuple[Person, ...]
    members: tuple[MemberRow, ...]
    grid: tuple[tuple[str, int], ...]  # the member sheet's (track name, day) columns
    in_group_now: int
    with_playbook: bool  # --config: tracks, rewards and the survey have their words
    conversion: ConversionFigures  # by_tier: TIERS' codes and LEFT
    survey: SurveyFigures | None  # None: the cohort has no questionnaire

    @property
    def end(self) -> date:
        return self.start + timedelta(days=self.days - 1)

    def tier(self, code: str) -> tuple[Person, ...]:
        return dict(self.tiers)[code]

    def lesson_track(self) -> str:
        """The name of the track whose every day makes "finished" in the conversion."""
        tid = self.conversion.lesson_track
        return next((t.name for t in self.tracks if t.id == tid), tid or "")

    def conversion_rate(self) -> float | None:
        """Enrolled over every member who joined (%)."""
        overall = self.conversion.overall
        return percent(overall.converted, overall.members)

    def completion(self) -> float | None:
        """Check-ins over members in the group, all tracks, the closed days."""
        rows = [r for r in self.funnel if not (self.today_open and r.day == self.last_day)]
        return percent(sum(r.done for r in rows), sum(r.in_group for r in rows))

    def active_average(self) -> float | None:
        """The daily active share (%), averaged over the days."""
        rates = [r.active_rate for r in self.daily if r.active_rate is not None]
        return round(sum(rates) / len(rates), 1) if rates else None

    def reminder_totals(self, kind: str) -> ReminderRow | None:
        rows = [r for r in self.reminders if r.kind == kind]
        if not rows:
            return None
        return ReminderRow(
            kind,
            0,
            rows[0].at,
            sum(r.reminded for r in rows),
            sum(r.reminded_done for r in rows),
            sum(r.others for r in rows),
            sum(r.others_done for r in rows),
        )


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    member_id: str
    name: str
    present: bool
    joined: datetime
    left: datetime | None
    muted: bool
    reachable: bool

    def in_group(self, at: datetime) -> bool:
        return self.joined <= at and (self.left is None or self.left > at)


@dataclass(frozen=True)
class _CheckIn:
    member_id: str
    track: str
    day: int
    at: datetime
    makeup_by: str | None

    @property
    def own(self) -> bool:
        """Made by the member (an ordinary check-in or their own 补卡), not credited by an
        operator."""
        return self.makeup_by is None or self.makeup_by == self.member_id


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def compute(
    conn: Connection,
    cohort_id: str,
    now: datetime,
    playbook: Playbook | None = None,
    thresholds: Thresholds | None = None,
) -> Report:
    """The report of ``cohort_id`` as of ``now`` (a rehearsal played on virtual time: as of
    the end of its last recorded day).
    ``playbook`` (with --config) gives tracks, rewards and days their names and the cohort
    its length; without one they are shown by id, over the days with records."""
    limits = thresholds or Thresholds()
    row = conn.execute(select(cohort_t).where(cohort_t.c.id == cohort_id)).one()
    pb = playbook
    zone = _zone(row.timezone)
    # The playbook's calendar; without it (--db), the one the bot recorded.
    starts = (pb.day_starts if pb else row.day_starts) or time(0, 0)
    probe = Calendar(row.start, 1, zone, starts)
    last = repo.last_recorded(conn, cohort_id)
    as_of = now
    if last is not None and last > now:
        # A rehearsal on virtual time (`demo --db`, `simulate --db`), in the future of the
        # real clock: it was played to the end of its last day.
        as_of = probe.at(probe.day_of(last) + 1, starts)
    if as_of < probe.start_utc():
        raise ReportError(
            _("cohort {cohort} starts on {start}; there is nothing to report before its first day").format(
                cohort=cohort_id, start=row.start
            )
        )
    people = [
        _Member(
            m.member_id,
            m.alias or m.name or m.member_id,
            m.present,
            m.joined_at,
            m.left_at,
            m.muted,
            m.reachable,
        )
        for m in conn.execute(
            select(member_t)
            .where(member_t.c.cohort_id == cohort_id, member_t.c.role == LEARNER)
            .order_by(member_t.c.joined_at, member_t.c.member_id)
        )
    ]
    if not people:
        raise ReportError(
            _(
                "cohort {cohort} has no members recorded yet (they are recorded when its bot "
                "reads the group); report again once it runs"
            ).format(cohort=cohort_id)
        )
    learners = {m.member_id for m in people}
    checkins = [
        _CheckIn(c.member_id, c.track, c.day, c.at, getattr(c, "makeup_by", None))
        for c in conn.execute(
            select(checkin_t)
            .where(checkin_t.c.cohort_id == cohort_id)
            .order_by(checkin_t.c.at, checkin_t.c.id)
        )
        if c.member_id in learners
    ]
    messages = {k: n for k, n in repo.message_counts(conn, cohort_id).items() if k[0] in learners}
    days = pb.days if pb else row.days or max([1, *(c.day for c in checkins), *(d for _m, d in messages)])
    cal = Calendar(row.start, days, zone, starts)
    last_day = max(1, min(days, cal.day_of(as_of)))
    data = _Data(
        cal,
        last_day,
        people,
        checkins,
        messages,
        _tracks(pb, checkins, last_day),
        repo.leave_days(conn, cohort_id),
        as_of,
    )
    grants = [
        (g.member_id, g.reward_id)
        for g in conn.execute(
            select(grant_t.c.member_id, grant_t.c.reward_id)
            .where(grant_t.c.cohort_id == cohort_id)
            .order_by(grant_t.c.at, grant_t.c.member_id)
        )
        if g.member_id in learners
    ]
    sends = conn.execute(
        select(out_t.c.kind, out_t.c.sent_at, out_t.c.member_id, out_t.c.mentions)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.kind.in_(REMINDER_KINDS), out_t.c.status == "sent")
        .order_by(out_t.c.sent_at, out_t.c.id)
    ).all()
    tiers = data.tiers(limits)
    tier_of = {p.member_id: code for code, ps in tiers.items() for p in ps}
    tier_of |= {m.member_id: LEFT for m in people if not m.present}
    conversion = conversion_figures(conn, cohort_id, pb, tier_of)
    reward_names = {r.id: r.name for r in pb.rewards} if pb else {}
    return Report(
        cohort=cohort_id,
        name=row.playbook,
        room=row.room,
        start=row.start,
        days=days,
        last_day=last_day,
        today_open=as_of < cal.at(last_day + 1, starts),
        zone=zone.key,
        as_of=as_of.astimezone(zone).replace(microsecond=0),
        thresholds=limits,
        tracks=tuple(data.tracks),
        funnel=tuple(data.funnel()),
        hours=data.hours(),
        reminders=tuple(data.reminders(sends)),
        daily=tuple(data.daily()),
        tiers=tuple((code, tuple(tiers[code])) for code in TIERS),
        rewards=tuple(data.rewards(grants, [r.id for r in pb.rewards] if pb else [], reward_names)),
        streaks=tuple(data.streaks()),
        muted=tuple(data.person(m) for m in people if m.present and m.muted),
        unreachable=tuple(data.person(m) for m in people if m.present and not m.reachable),
        left=tuple(data.person(m) for m in people if not m.present),
        members=tuple(data.member_rows(tiers, grants, reward_names, conversion.converted)),
        grid=tuple((t.name, d) for t in data.tracks for d in t.days),
        in_group_now=sum(1 for m in people if m.present),
        with_playbook=pb is not None,
        conversion=conversion,
        survey=survey_figures(conn, cohort_id, pb),
    )


def _tracks(pb: Playbook | None, checkins: Sequence[_CheckIn], last_day: int) -> list[Track]:
    """The playbook's tracks and days; without one, the tracks and days that have check-ins."""
    if pb is not None:
        return [
            Track(tid, t.name, tuple(d for d in sorted(t.days) if d <= last_day))
            for tid, t in pb.tracks.items()
        ]
    seen: dict[str, set[int]] = defaultdict(set)
    for c in checkins:
        seen[c.track].add(c.day)
    return [
        Track(tid, tid, tuple(d for d in sorted(ds) if d <= last_day)) for tid, ds in sorted(seen.items())
    ]


@dataclass
class _Data:
    cal: Calendar
    last_day: int
    people: list[_Member]
    checkins: list[_CheckIn]
    messages: dict[tuple[str, int], int]
    tracks: list[Track]
    leave: set[tuple[str, int]]
    as_of: datetime

    def __post_init__(self) -> None:
        self.by_id = {m.member_id: m for m in self.people}
        self.done: dict[tuple[str, str, int], _CheckIn] = {
            (c.member_id, c.track, c.day): c for c in self.checkins
        }
        # Own check-in times per member, sorted: "checked in within 2 h" is a bisect.
        self.own_times: dict[str, list[datetime]] = defaultdict(list)
        for c in self.checkins:
            if c.own:
                self.own_times[c.member_id].append(c.at)
        for times in self.own_times.values():
            times.sort()
        self.own_days: dict[str, set[int]] = defaultdict(set)
        for c in self.checkins:
            if c.makeup_by is None:
                self.own_days[c.member_id].add(c.day)
        self.said: Counter[str] = Counter()
        for (m, _day), n in self.messages.items():
            self.said[m] += n
        self.checked: Counter[str] = Counter(c.member_id for c in self.checkins)
        self.own: Counter[str] = Counter(c.member_id for c in self.checkins if c.own)

    def person(self, m: _Member) -> Person:
        return Person(m.member_id, m.name)

    def today(self) -> int:
        """The day a streak runs to: the last day while it is open; once closed, the day
        after (a closed day without a check-in breaks a streak)."""
        return self.last_day if self.as_of < self.close(self.last_day) else self.last_day + 1

    def close(self, day: int) -> datetime:
        return self.cal.at(day + 1, self.cal.day_starts)

    def here(self, day: int) -> list[_Member]:
        """Members in the group when the day's check-ins close."""
        end = self.close(day)
        return [m for m in self.people if m.in_group(end)]

    def funnel(self) -> Iterable[FunnelRow]:
        per_day: Counter[tuple[str, int]] = Counter()
        makeups: Counter[tuple[str, int]] = Counter()
        for c in self.checkins:
            per_day[(c.track, c.day)] += 1
            if c.makeup_by is not None:
                makeups[(c.track, c.day)] += 1
        in_group = {d: len(self.here(d)) for d in range(1, self.last_day + 1)}
        for day in range(1, self.last_day + 1):
            for t in self.tracks:
                if day in t.days:
                    yield FunnelRow(day, t.name, per_day[(t.id, day)], makeups[(t.id, day)], in_group[day])

    def hours(self) -> tuple[int, ...]:
        counts = Counter(self.cal.local(c.at).hour for c in self.checkins if c.makeup_by is None)
        return tuple(counts[h] for h in range(24))

    def active(self, day: int) -> set[str]:
        spoke = {m for (m, d), n in self.messages.items() if d == day and n > 0}
        return spoke | {m for m, days in self.own_days.items() if day in days}

    def daily(self) -> Iterable[DayRow]:
        active = {d: self.active(d) for d in range(1, self.last_day + 2)}
        checkins = Counter(c.day for c in self.checkins)
        for day in range(1, self.last_day + 1):
            said = sum(n for (_m, d), n in self.messages.items() if d == day)
            retained = len(active[day] & active[day + 1]) if day < self.last_day else None
            yield DayRow(day, len(self.here(day)), len(active[day]), said, checkins[day], retained)

    def reminders(self, sends: Sequence[Any]) -> Iterable[ReminderRow]:
        for kind in REMINDER_KINDS:
            rounds: list[list[tuple[datetime, str]]] = []
            for s in sends:
                if s.kind != kind or s.sent_at is None:
                    continue
                at = s.sent_at
                whom = json.loads(s.mentions) if kind == "remind" and s.mentions else [s.member_id]
                if not rounds or at - rounds[-1][0][0] > ROUND:
                    rounds.append([])
                rounds[-1].extend((at, m) for m in whom if m in self.by_id)
            for r in rounds:
                if r:
                    yield self._round(kind, r)

    def _round(self, kind: str, sent: list[tuple[datetime, str]]) -> ReminderRow:
        first = sent[0][0]
        reminded: dict[str, datetime] = {}
        for at, m in sent:
            reminded.setdefault(m, at)
        day = self.cal.day_of(first)
        others = [
            m.member_id
            for m in self.people
            if m.member_id not in reminded
            and m.in_group(first)
            and not self._done_before(m.member_id, day, first)
        ]
        return ReminderRow(
            kind,
            day,
            self.cal.local(first).replace(tzinfo=None, microsecond=0),
            len(reminded),
            sum(1 for m, at in reminded.items() if self._checked_in(m, at)),
            len(others),
            sum(1 for m in others if self._checked_in(m, first)),
        )

    def _checked_in(self, member_id: str, after: datetime) -> bool:
        times = self.own_times.get(member_id, [])
        return bisect_right(times, after + REMINDER_WINDOW) > bisect_right(times, after)

    def _done_before(self, member_id: str, day: int, before: datetime) -> bool:
        """An own check-in between the start of cohort ``day`` and ``before``."""
        times = self.own_times.get(member_id, [])
        return bisect_left(times, before) > bisect_left(times, self.cal.at(day, self.cal.day_starts))

    def tiers(self, limits: Thresholds) -> dict[str, list[Person]]:
        said, done, own = self.said, self.checked, self.own
        here = [m for m in self.people if m.present]
        talkers = sorted(
            (m for m in here if said[m.member_id] >= limits.active_min_messages),
            key=lambda m: (-(said[m.member_id] + done[m.member_id]), -said[m.member_id], m.name, m.member_id),
        )
        out: dict[str, list[Person]] = {
            KEY: [self.person(m) for m in talkers[: limits.key_members]],
            ACTIVE: [self.person(m) for m in talkers[limits.key_members :]],
            OCCASIONAL: [],
            LURKER: [],
        }
        for m in here:
            if said[m.member_id] < limits.active_min_messages:
                spoke = said[m.member_id] > 0 or own[m.member_id] > 0
                out[OCCASIONAL if spoke else LURKER].append(self.person(m))
        return out

    def rewards(
        self, grants: Sequence[tuple[str, str]], order: Sequence[str], names: Mapping[str, str]
    ) -> Iterable[RewardRow]:
        by_reward: dict[str, list[Person]] = {r: [] for r in order}
        for m, r in grants:
            by_reward.setdefault(r, []).append(self.person(self.by_id[m]))
        for r, people in by_reward.items():
            yield RewardRow(names.get(r, r), tuple(people))

    def streaks(self) -> Iterable[StreakRow]:
        here = [m for m in self.people if m.present]
        for t in self.tracks:
            longest = {m.member_id: streaks.longest(self._days(m, t), t.days) for m in here}
            best = max(longest.values(), default=0)
            holders = tuple(self.person(m) for m in here if best and longest[m.member_id] == best)
            full = sum(1 for n in longest.values() if t.days and n == len(t.days))
            yield StreakRow(t.name, len(t.days), full, best, holders)

    def _days(self, m: _Member, t: Track) -> set[int]:
        return {d for d in t.days if (m.member_id, t.id, d) in self.done}

    def status(self, m: _Member, t: Track, day: int) -> str:
        c = self.done.get((m.member_id, t.id, day))
        if c is not None:
            return DONE if c.makeup_by is None else MAKEUP
        if (m.member_id, day) in self.leave:
            return ON_LEAVE
        end = self.close(day)
        if not m.in_group(end) or end > self.as_of:
            return ""  # not in the group that day, or the day is still open
        return MISSED

    def member_rows(
        self,
        tiers: Mapping[str, list[Person]],
        grants: Sequence[tuple[str, str]],
        names: Mapping[str, str],
        enrolled: frozenset[str],
    ) -> Iterable[MemberRow]:
        tier_of = {p.member_id: code for code, people in tiers.items() for p in people}
        earned: dict[str, list[str]] = defaultdict(list)
        for mid, r in grants:
            earned[mid].append(names.get(r, r))
        for m in self.people:
            said, done = self.said[m.member_id], self.checked[m.member_id]
            yield MemberRow(
                m.member_id,
                m.name,
                m.present,
                self.cal.local(m.joined).replace(tzinfo=None, microsecond=0),
                self.cal.local(m.left).replace(tzinfo=None, microsecond=0) if m.left else None,
                tier_of.get(m.member_id, ""),
                said,
                done,
                tuple(self.status(m, t, d) for t in self.tracks for d in t.days),
                tuple(
                    (
                        streaks.current(self._days(m, t), t.days, self.today()),
                        streaks.longest(self._days(m, t), t.days),
                    )
                    for t in self.tracks
                ),
                tuple(earned[m.member_id]),
                m.muted,
                m.reachable,
                m.member_id in enrolled,
            )


# --- several cohorts --------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortLine:
    """One cohort of a comparison: its report, or why there is none yet."""

    cohort: str
    report: Report | None
    problem: str = ""


def compare(
    conn: Connection,
    cohort_ids: Sequence[str],
    now: datetime,
    playbooks: Mapping[str, Playbook],
    thresholds: Thresholds | None = None,
) -> list[CohortLine]:
    """Each cohort's report, side by side (`report --config` when the config runs several):
    the same computation as one cohort's, so its numbers are those of `--cohort ID`."""
    known = set(conn.execute(select(cohort_t.c.id)).scalars())
    lines = []
    for cid in cohort_ids:
        if cid not in known:
            lines.append(CohortLine(cid, None, _("not in the database yet: its bot has not started")))
            continue
        try:
            lines.append(CohortLine(cid, compute(conn, cid, now, playbooks.get(cid), thresholds)))
        except ReportError as exc:
            lines.append(CohortLine(cid, None, str(exc)))
    return lines
