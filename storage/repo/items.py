"""Schedule items: claimed before they act, and held while the cohort is paused."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from storage.repo._common import _aware, _insert_new
from storage.repo.tables import item_t


def claim_item(
    conn: Connection, cohort_id: str, item_id: str, due: datetime, at: datetime, status: str = "done"
) -> bool:
    """Claim a schedule item before acting on it; False if it was claimed before."""
    return _insert_new(
        conn, item_t, dict(cohort_id=cohort_id, item_id=item_id, due=due, at=at, status=status)
    )


def claimed_items(conn: Connection, cohort_id: str) -> dict[str, str]:
    return dict(
        conn.execute(select(item_t.c.item_id, item_t.c.status).where(item_t.c.cohort_id == cohort_id)).all()
    )


def held_items(conn: Connection, cohort_id: str) -> list[tuple[str, datetime]]:
    """Items that fell due while the cohort was paused, waiting for an operator's choice."""
    q = (
        select(item_t.c.item_id, item_t.c.due)
        .where(item_t.c.cohort_id == cohort_id, item_t.c.status == "held")
        .order_by(item_t.c.due)
    )
    return [(i, _aware(d)) for i, d in conn.execute(q)]


def release_item(conn: Connection, cohort_id: str, item_id: str, status: str, at: datetime) -> bool:
    """A held item sent ("done") or skipped ("skipped"); False if it was not held (another
    operator decided first)."""
    res = conn.execute(
        update(item_t)
        .where(item_t.c.cohort_id == cohort_id, item_t.c.item_id == item_id, item_t.c.status == "held")
        .values(status=status, at=at)
    )
    return res.rowcount == 1
