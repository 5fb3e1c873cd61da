"""Check-ins, make-ups and days of leave: what each member did on each day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, bindparam, func, select

from storage.models import LEARNER
from storage.repo._common import _aware, _insert_new
from storage.repo.tables import checkin_t, leave_t, member_t


def has_checkin(conn: Connection, cohort_id: str, member_id: str, track: str, day: int) -> bool:
    q = select(checkin_t.c.id).where(
        checkin_t.c.cohort_id == cohort_id,
        checkin_t.c.member_id == member_id,
        checkin_t.c.track == track,
        checkin_t.c.day == day,
    )
    return conn.execute(q).first() is not None


# --- check-ins and rewards -------------------------------------------------------------


def record_checkin(
    conn: Connection,
    cohort_id: str,
    member_id: str,
    track: str,
    day: int,
    at: datetime,
    named_at: datetime | None = None,
    makeup_by: str | None = None,
) -> bool:
    """Count a check-in; False if this member already checked in on this track and day.
    ``named_at`` None: it waits for the next roll call to name it. ``makeup_by``: a make-up
    credited by that member (themself, or an operator)."""
    return _insert_new(
        conn,
        checkin_t,
        dict(
            cohort_id=cohort_id,
            member_id=member_id,
            track=track,
            day=day,
            at=at,
            named_at=named_at,
            makeup_by=makeup_by,
        ),
    )


def makeups_by_self(conn: Connection, cohort_id: str, member_id: str) -> int:
    """How many make-ups the member has credited themself (the playbook's quota)."""
    return conn.execute(
        select(func.count())
        .select_from(checkin_t)
        .where(
            checkin_t.c.cohort_id == cohort_id,
            checkin_t.c.member_id == member_id,
            checkin_t.c.makeup_by == member_id,
        )
    ).scalar_one()


def checked_in_ids(conn: Connection, cohort_id: str, track: str, day: int) -> set[str]:
    return set(
        conn.execute(
            select(checkin_t.c.member_id).where(
                checkin_t.c.cohort_id == cohort_id, checkin_t.c.track == track, checkin_t.c.day == day
            )
        ).scalars()
    )


_learner_here = and_(
    member_t.c.cohort_id == checkin_t.c.cohort_id,
    member_t.c.member_id == checkin_t.c.member_id,
    member_t.c.present.is_(True),
    member_t.c.role == LEARNER,
)


_DAY_COUNTS = select(
    select(func.count())
    .select_from(checkin_t.join(member_t, _learner_here))
    .where(
        checkin_t.c.cohort_id == bindparam("cohort"),
        checkin_t.c.track == bindparam("track"),
        checkin_t.c.day == bindparam("day"),
    )
    .scalar_subquery(),
    select(func.count())
    .select_from(member_t)
    .where(
        member_t.c.cohort_id == bindparam("cohort"), member_t.c.present.is_(True), member_t.c.role == LEARNER
    )
    .scalar_subquery(),
)


def day_counts(conn: Connection, cohort_id: str, track: str, day: int) -> tuple[int, int]:
    """({done}, {total}): learners in the group now with a check-in on that track and day,
    and learners in the group now. One round trip: this runs for every check-in."""
    done, total = conn.execute(_DAY_COUNTS, {"cohort": cohort_id, "track": track, "day": day}).one()
    return done, total


def member_days(conn: Connection, cohort_id: str, member_id: str, track: str) -> list[int]:
    return sorted(
        conn.execute(
            select(checkin_t.c.day).where(
                checkin_t.c.cohort_id == cohort_id,
                checkin_t.c.member_id == member_id,
                checkin_t.c.track == track,
            )
        ).scalars()
    )


def track_days(conn: Connection, cohort_id: str, track: str) -> dict[str, set[int]]:
    """Member id -> the days they checked in on ``track``: everyone's, in one query (streaks,
    figures)."""
    out: dict[str, set[int]] = {}
    q = select(checkin_t.c.member_id, checkin_t.c.day).where(
        checkin_t.c.cohort_id == cohort_id, checkin_t.c.track == track
    )
    for mid, day in conn.execute(q):
        out.setdefault(mid, set()).add(day)
    return out


def checkin_totals(
    conn: Connection, cohort_id: str, track: str | None = None
) -> list[tuple[str, int, datetime]]:
    """(member id, check-ins, time of the last one) for members present, most first; ties
    go to whoever got there first."""
    q = (
        select(checkin_t.c.member_id, func.count(), func.max(checkin_t.c.at))
        .join(member_t, _learner_here)
        .where(checkin_t.c.cohort_id == cohort_id)
        .group_by(checkin_t.c.member_id)
    )
    if track is not None:
        q = q.where(checkin_t.c.track == track)
    rows = [(mid, n, _aware(last)) for mid, n, last in conn.execute(q)]
    return sorted(rows, key=lambda r: (-r[1], r[2], r[0]))


def checkins_by_day(conn: Connection, cohort_id: str) -> dict[tuple[str, int], int]:
    q = (
        select(checkin_t.c.track, checkin_t.c.day, func.count())
        .where(checkin_t.c.cohort_id == cohort_id)
        .group_by(checkin_t.c.track, checkin_t.c.day)
    )
    return {(t, d): n for t, d, n in conn.execute(q)}


def add_leave(conn: Connection, cohort_id: str, member_id: str, day: int, at: datetime) -> bool:
    """A day's leave; False if it was already taken."""
    return _insert_new(conn, leave_t, dict(cohort_id=cohort_id, member_id=member_id, day=day, at=at))


def on_leave_ids(conn: Connection, cohort_id: str, day: int) -> set[str]:
    q = select(leave_t.c.member_id).where(leave_t.c.cohort_id == cohort_id, leave_t.c.day == day)
    return set(conn.execute(q).scalars())


def leave_days(conn: Connection, cohort_id: str) -> set[tuple[str, int]]:
    """(member id, day) of every leave taken."""
    q = select(leave_t.c.member_id, leave_t.c.day).where(leave_t.c.cohort_id == cohort_id)
    return {(m, d) for m, d in conn.execute(q)}
