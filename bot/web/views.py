"""What the console's pages show, read from the database (storage/repo/) and the running
cohorts: numbers and states only; the words are the templates' (in the operator's language)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection

from bot.cohort import CohortRun
from storage import repo

# A member's state on a track today, in the order the roster lists them.
NOT_YET, DONE, LEAVE, MUTED, UNREACHABLE = "not-yet", "done", "leave", "muted", "unreachable"


@dataclass(frozen=True)
class TrackToday:
    id: str
    name: str
    done: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


@dataclass(frozen=True)
class Overview:
    id: str
    room: str
    day: int
    days: int
    phase: str  # "before" | "on" | "over"
    tracks: list[TrackToday]
    sent: int
    pending: int
    next_item: str | None
    next_at: datetime | None
    waiting: int
    failed: int
    paused_at: datetime | None
    paused_by: str | None
    held: int
    alerts: list[str] = field(default_factory=list)  # keys: "failed", "paused", "held", "behind"


def phase(run: CohortRun, day: int) -> str:
    return "before" if day < 1 else "over" if day > run.playbook.days else "on"


def todays_tracks(run: CohortRun, day: int) -> list[str]:
    return [tid for tid, t in run.playbook.tracks.items() if day in t.days]


def overview(conn: Connection, run: CohortRun, now: datetime) -> Overview:
    day = run.day(now)
    tracks = [
        TrackToday(tid, run.playbook.tracks[tid].name, *repo.day_counts(conn, run.id, tid, day))
        for tid in todays_tracks(run, day)
    ]
    claimed = repo.claimed_items(conn, run.id)
    todays = [p for p in run.plan if run.day(p.due) == day]
    coming = [p for p in todays if p.item_id not in claimed and p.due > now]
    waiting, failed = repo.queue_counts(conn, [run.id])
    paused = repo.paused(conn, run.id)
    held = len(repo.held_items(conn, run.id))
    alerts = []
    if failed:
        alerts.append("failed")
    if paused:
        alerts.append("paused")
    if held:
        alerts.append("held")
    if any(p.due < now and p.item_id not in claimed for p in todays):
        alerts.append("behind")  # an item past due and not claimed: the bot is not keeping up
    return Overview(
        run.id,
        run.room,
        day,
        run.playbook.days,
        phase(run, day),
        tracks,
        sum(1 for p in todays if claimed.get(p.item_id) == "done"),
        len(coming),
        coming[0].item_id if coming else None,
        coming[0].due if coming else None,
        waiting,
        failed,
        paused[0] if paused else None,
        paused[1] if paused else None,
        held,
        alerts,
    )


@dataclass(frozen=True)
class RosterRow:
    member_id: str
    name: str
    states: dict[str, str]  # track id -> NOT_YET | DONE | LEAVE | MUTED | UNREACHABLE


def roster(conn: Connection, run: CohortRun, day: int) -> list[RosterRow]:
    """Today's learners with their state on each of today's tracks; who has not checked in
    first. Muted and unreachable members who have not checked in are told apart: nobody can
    nudge them."""
    tracks = todays_tracks(run, day)
    done = {tid: repo.checked_in_ids(conn, run.id, tid, day) for tid in tracks}
    leave = repo.on_leave_ids(conn, run.id, day)
    muted = repo.muted_ids(conn, run.id)
    rows = []
    for m in repo.learners(conn, run.id):
        states = {}
        for tid in tracks:
            if m.member_id in done[tid]:
                states[tid] = DONE
            elif m.member_id in leave:
                states[tid] = LEAVE
            elif m.member_id in muted:
                states[tid] = MUTED
            elif not m.reachable:
                states[tid] = UNREACHABLE
            else:
                states[tid] = NOT_YET
        rows.append(RosterRow(m.member_id, m.shown, states))
    rows.sort(key=lambda r: (all(s == DONE for s in r.states.values()), r.name))
    return rows


@dataclass(frozen=True)
class TimelineItem:
    item_id: str
    kind: str
    due: datetime
    status: str  # sent | pending | held | missed | skipped | late (due, not claimed yet)


def timeline(conn: Connection, run: CohortRun, day: int, now: datetime) -> list[TimelineItem]:
    claimed = repo.claimed_items(conn, run.id)
    shown = {"done": "sent"}
    items = []
    for p in run.plan:
        if run.day(p.due) != day:
            continue
        status = claimed.get(p.item_id)
        if status is None:
            status = "pending" if p.due > now else "late"
        items.append(TimelineItem(p.item_id, p.item.kind, p.due, shown.get(status, status)))
    return items
