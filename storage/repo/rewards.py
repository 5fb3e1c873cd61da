"""Rewards granted to members."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from storage.repo._common import _insert_new
from storage.repo.tables import grant_t


def grant_reward(conn: Connection, cohort_id: str, member_id: str, reward_id: str, at: datetime) -> bool:
    """Claim a reward for a member; False if it was granted before."""
    return _insert_new(
        conn, grant_t, dict(cohort_id=cohort_id, member_id=member_id, reward_id=reward_id, at=at)
    )


def rewards_of(conn: Connection, cohort_id: str, member_id: str) -> list[str]:
    return list(
        conn.execute(
            select(grant_t.c.reward_id)
            .where(grant_t.c.cohort_id == cohort_id, grant_t.c.member_id == member_id)
            .order_by(grant_t.c.at)
        ).scalars()
    )


def grants(conn: Connection, cohort_id: str) -> list[tuple[str, str, datetime]]:
    return [
        (m, r, a)
        for m, r, a in conn.execute(
            select(grant_t.c.member_id, grant_t.c.reward_id, grant_t.c.at)
            .where(grant_t.c.cohort_id == cohort_id)
            .order_by(grant_t.c.at)
        )
    ]
