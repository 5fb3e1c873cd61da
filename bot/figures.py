"""Figures in members' texts, {completion} {checked_in} {rewarded} {streak}, and the streak
rankings: worked out here, from the database, when a text is sent; and, for `validate`, where a
figure cannot be filled (docs/playbook.*.md, "Figures").

Learners are the members in the group now, less the operators and the bot (as in {total}).

{completion}  "78%": learners checked in ÷ learners, to the nearest whole per cent.
    remind, nudge      that day ({day}) on the item's track: {done}/{total};
    ack                today on the track;
    leaderboard title  its track so far;
    post               the cohort so far, every track together.
  "So far" is the average daily completion over the track days closed by then: check-ins ÷
  (learners × those days). A track day closes when its check-ins stop counting: at its
  `until`, else when the day ends (`day_starts` the next morning).
{checked_in}  how many learners: that day on the track in a remind or nudge (= {done}); in a
    leaderboard title, those with a check-in on its track so far; in a post, on any track.
{rewarded}    learners who have earned at least one reward so far.
{streak}      one member's current streak on the track (bot/streaks.py): in a nudge, going
    into the day it is about; in an ack or a reward's texts, with this check-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

from bot import streaks
from bot.cohort import CohortRun
from bot.i18n import _
from bot.plan import Calendar
from bot.playbook import Playbook, ScheduleItem, Track
from storage import repo

GROUP = ("completion", "checked_in", "rewarded")  # the figures of texts to the whole group
NAMED_STREAK = 2  # the shortest streak worth naming (progress, summary): one day is not a run yet


def percent(done: int, total: int) -> str:
    """ "78%", rounded half up (7 of 9 is 78%, 1 of 8 is 13%); "0%" for nobody."""
    return f"{(200 * done + total) // (2 * total)}%" if total else "0%"


def closes(cal: Calendar, track: Track, day: int) -> datetime:
    """When check-ins for ``day`` on ``track`` stop counting."""
    return cal.deadline(day, track.until) if track.until else cal.at(day + 1, cal.day_starts)


def closed_days(pb: Playbook, cal: Calendar, tids: Sequence[str], at: datetime) -> list[tuple[str, int]]:
    """(track id, day) of the track days whose check-ins are over at ``at``. A day outside the
    cohort is left out: `validate` asks this of a playbook it is still telling about such a day
    (day 10000000 is past any calendar)."""
    return [
        (tid, d)
        for tid in tids
        for d in pb.tracks[tid].days
        if 1 <= d <= pb.days and at >= closes(cal, pb.tracks[tid], d)
    ]


def streak_day(run: CohortRun, track: Track, now: datetime) -> int:
    """The day a streak is judged on (streaks.current's ``today``): today, or tomorrow once
    today's check-ins on the track are over (a day missed past its `until` breaks it)."""
    day = run.day(now)
    return day + 1 if day in track.days and now >= closes(run.cal, track, day) else day


def on_day(done: int, total: int) -> dict[str, object]:
    """The figures of one day on one track."""
    return {"checked_in": done, "completion": percent(done, total)}


def so_far(conn: Connection, run: CohortRun, tids: Sequence[str], now: datetime) -> dict[str, object]:
    """The figures of the cohort so far, on these tracks together."""
    here = {m.member_id for m in repo.learners(conn, run.id)}
    closed = closed_days(run.playbook, run.cal, tids, now)
    took_part: set[str] = set()
    count = 0
    for tid in tids:
        days = {mid: ds for mid, ds in repo.track_days(conn, run.id, tid).items() if mid in here}
        took_part |= set(days)
        count += sum(1 for t, d in closed if t == tid for ds in days.values() if d in ds)
    return {"checked_in": len(took_part), "completion": percent(count, len(here) * len(closed))}


def rewarded(conn: Connection, run: CohortRun) -> int:
    here = {m.member_id for m in repo.learners(conn, run.id)}
    return len({mid for mid, _reward, _at in repo.grants(conn, run.id) if mid in here})


def streak_ranking(
    conn: Connection, run: CohortRun, tid: str, top: int, now: datetime, at_least: int = 1
) -> list[tuple[str, int]]:
    """(name, current streak) of learners on the track, longest first, streaks of at least
    ``at_least``; ties go to more days checked in, then to whoever joined first."""
    track = run.playbook.tracks[tid]
    today = streak_day(run, track, now)
    days = repo.track_days(conn, run.id, tid)
    rows = []
    for joined, m in enumerate(repo.learners(conn, run.id)):
        done = days.get(m.member_id, set())
        n = streaks.current(done, track.days, today)
        if n >= at_least:
            rows.append((-n, -len(done), joined, m.shown, n))
    return [(name, n) for *_order, name, n in sorted(rows)[:top]]


# --- validate: where a figure cannot be filled ----------------------------------------------


def _calendar(pb: Playbook) -> Calendar:
    """Cohort days and times for checks that need no real date."""
    return Calendar(date(2000, 1, 1), pb.days, ZoneInfo("UTC"), pb.day_starts or time(0, 0))


def unfillable(
    pb: Playbook, it: ScheduleItem, fields: tuple[str, ...], so_far_tracks: Sequence[str] | None = None
) -> dict[str, str]:
    """The figures this item's text cannot fill, each with why and what to do. Its "so far"
    figures are about ``so_far_tracks`` (None: about the item's one day)."""
    why: dict[str, str] = {}
    if "streak" not in fields:
        why["streak"] = _(
            "`{streak}` is one member's streak, and this text goes to the whole group; it can be "
            "used in a nudge's `dm`, a track's `ack` and a reward's `dm` or `announce`"
        )
    if not pb.rewards:
        why["rewarded"] = _(
            "`{rewarded}` counts the members who earned a reward, and this playbook has no "
            "`rewards:`; add one, or leave `{rewarded}` out"
        )
    tracks = [tid for tid in so_far_tracks or () if tid in pb.tracks]
    if not tracks:
        return why
    cal = _calendar(pb)
    at = cal.at(it.day, it.at)
    days = [(tid, d) for tid in tracks for d in pb.tracks[tid].days if 1 <= d <= pb.days]
    if not days:
        return why  # the tracks' days are all outside the cohort, and told as such
    first = min(d for _tid, d in days)
    if at < cal.at(first, cal.day_starts):
        why["checked_in"] = _(
            "`{{checked_in}}` here counts the members who have checked in so far, and check-ins "
            "begin on day {first}; move this item to day {first} or later, or leave "
            "`{{checked_in}}` out"
        ).format(first=first)
    if not closed_days(pb, cal, tracks, at):
        tid, d = min(days, key=lambda td: closes(cal, pb.tracks[td[0]], td[1]))
        end = closes(cal, pb.tracks[tid], d)
        why["completion"] = _(
            "`{{completion}}` here is the completion of the track days whose check-ins are over, "
            "and none is over by day {day} {at}: the first, day {first} of track `{track}`, ends "
            "on day {end_day} at {end_at}; move this item later, or leave `{{completion}}` out"
        ).format(
            day=it.day,
            at=f"{it.at:%H:%M}",
            first=d,
            track=tid,
            end_day=cal.date_day(end),
            end_at=f"{end:%H:%M}",
        )
    return why
