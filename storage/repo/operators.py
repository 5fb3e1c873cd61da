"""The operators' pause of a cohort and their audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from storage.repo._common import _aware
from storage.repo.tables import action_t, cohort_t


def paused(conn: Connection, cohort_id: str) -> tuple[datetime, str | None] | None:
    """(since, by whom) when the cohort is paused."""
    r = conn.execute(
        select(cohort_t.c.paused_at, cohort_t.c.paused_by).where(cohort_t.c.id == cohort_id)
    ).first()
    return (_aware(r[0]), r[1]) if r and r[0] is not None else None


def set_paused(conn: Connection, cohort_id: str, at: datetime | None, by: str | None) -> None:
    conn.execute(update(cohort_t).where(cohort_t.c.id == cohort_id).values(paused_at=at, paused_by=by))


def audit(conn: Connection, cohort_id: str, operator_id: str, action: str, detail: str, at: datetime) -> None:
    conn.execute(
        action_t.insert().values(
            cohort_id=cohort_id, operator_id=operator_id, action=action, detail=detail, at=at
        )
    )


def actions(conn: Connection, cohort_id: str, limit: int = 50) -> list[tuple[datetime, str, str, str]]:
    """The audit log, newest first: (when, operator id, action, detail)."""
    q = (
        select(action_t.c.at, action_t.c.operator_id, action_t.c.action, action_t.c.detail)
        .where(action_t.c.cohort_id == cohort_id)
        .order_by(action_t.c.id.desc())
        .limit(limit)
    )
    return [(_aware(a), o, act, d) for a, o, act, d in conn.execute(q)]
