"""The cohorts themselves: their playbook, room and calendar, and when they last changed."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Connection, func, select, update

from storage.repo._common import _aware, _insert_new
from storage.repo.tables import checkin_t, cohort_t, member_t, out_t


def ensure_cohort(
    conn: Connection, cohort_id: str, playbook: str, room: str, start: date, timezone: str, now: datetime
) -> None:
    if not _insert_new(
        conn,
        cohort_t,
        dict(id=cohort_id, playbook=playbook, room=room, start=start, timezone=timezone, created_at=now),
    ):
        conn.execute(
            update(cohort_t)
            .where(cohort_t.c.id == cohort_id)
            .values(playbook=playbook, room=room, start=start, timezone=timezone)
        )


def set_calendar(conn: Connection, cohort_id: str, days: int, day_starts: time) -> None:
    """Record the playbook's length and day boundary for readers without it (the report)."""
    conn.execute(update(cohort_t).where(cohort_t.c.id == cohort_id).values(days=days, day_starts=day_starts))


def room_id_of(conn: Connection, cohort_id: str) -> str | None:
    return conn.execute(select(cohort_t.c.room_id).where(cohort_t.c.id == cohort_id)).scalar()


def set_room_id(conn: Connection, cohort_id: str, room_id: str) -> None:
    conn.execute(update(cohort_t).where(cohort_t.c.id == cohort_id).values(room_id=room_id))


def last_recorded(conn: Connection, cohort_id: str) -> datetime | None:
    """The latest moment recorded for a cohort: a send queued, a check-in, a join or a leave."""
    found = [
        _aware(conn.execute(select(func.max(col)).where(table.c.cohort_id == cohort_id)).scalar())
        for table, col in (
            (out_t, out_t.c.created_at),
            (checkin_t, checkin_t.c.at),
            (member_t, member_t.c.joined_at),
            (member_t, member_t.c.left_at),
        )
    ]
    return max((f for f in found if f is not None), default=None)
