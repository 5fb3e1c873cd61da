"""Roll calls: the check-ins, grants and notices waiting to be named, and when the last one went."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from storage.repo._common import _aware, _insert_new, _shown, _with_member
from storage.repo.tables import checkin_t, cohort_t, grant_t, notice_t


@dataclass(frozen=True)
class Unnamed:
    """A check-in (or reward grant) a roll call has not named yet."""

    member_id: str
    name: str
    key: str  # track id, or reward id
    day: int
    at: datetime
    makeup: bool = False


def unnamed_checkins(conn: Connection, cohort_id: str) -> list[Unnamed]:
    q = (
        select(
            checkin_t.c.member_id,
            _shown(checkin_t),
            checkin_t.c.track,
            checkin_t.c.day,
            checkin_t.c.at,
            checkin_t.c.makeup_by.is_not(None),
        )
        .select_from(_with_member(checkin_t))
        .where(checkin_t.c.cohort_id == cohort_id, checkin_t.c.named_at.is_(None))
        .order_by(checkin_t.c.at, checkin_t.c.id)
    )
    return [Unnamed(m, n, t, d, _aware(a), bool(mk)) for m, n, t, d, a, mk in conn.execute(q)]


def unnamed_grants(conn: Connection, cohort_id: str) -> list[Unnamed]:
    q = (
        select(grant_t.c.member_id, _shown(grant_t), grant_t.c.reward_id, grant_t.c.at)
        .select_from(_with_member(grant_t))
        .where(grant_t.c.cohort_id == cohort_id, grant_t.c.named_at.is_(None))
        .order_by(grant_t.c.at, grant_t.c.member_id, grant_t.c.reward_id)
    )
    return [Unnamed(m, n, r, 0, _aware(a)) for m, n, r, a in conn.execute(q)]


def mark_named(conn: Connection, cohort_id: str, at: datetime, until: datetime) -> None:
    """Everything waiting up to ``until`` has been named (in the same transaction as the
    roll call that names it is queued)."""
    conn.execute(
        update(checkin_t)
        .where(checkin_t.c.cohort_id == cohort_id, checkin_t.c.named_at.is_(None), checkin_t.c.at <= until)
        .values(named_at=at)
    )
    conn.execute(
        update(grant_t)
        .where(grant_t.c.cohort_id == cohort_id, grant_t.c.named_at.is_(None), grant_t.c.at <= until)
        .values(named_at=at)
    )
    conn.execute(
        update(notice_t)
        .where(
            notice_t.c.cohort_id == cohort_id,
            notice_t.c.footer_at.is_(None),
            notice_t.c.private.is_(False),
            notice_t.c.at <= until,
        )
        .values(footer_at=at)
    )


def mark_grant_named(conn: Connection, cohort_id: str, member_id: str, reward_id: str, at: datetime) -> None:
    conn.execute(
        update(grant_t)
        .where(
            grant_t.c.cohort_id == cohort_id,
            grant_t.c.member_id == member_id,
            grant_t.c.reward_id == reward_id,
        )
        .values(named_at=at)
    )


def waiting_since(conn: Connection, cohort_id: str) -> tuple[int, datetime] | None:
    """(how many check-ins wait to be named, since when) or None; reward grants and footer
    notices wait too, but only ride along."""
    count, oldest = conn.execute(
        select(func.count(), func.min(checkin_t.c.at)).where(
            checkin_t.c.cohort_id == cohort_id, checkin_t.c.named_at.is_(None)
        )
    ).one()
    if count:
        return count, _aware(oldest)
    q = select(func.min(grant_t.c.at)).where(grant_t.c.cohort_id == cohort_id, grant_t.c.named_at.is_(None))
    other = conn.execute(q).scalar()
    q2 = select(func.min(notice_t.c.at)).where(
        notice_t.c.cohort_id == cohort_id, notice_t.c.footer_at.is_(None), notice_t.c.private.is_(False)
    )
    other2 = conn.execute(q2).scalar()
    found = [_aware(x) for x in (other, other2) if x is not None]
    return (0, min(found)) if found else None


def last_rollcall(conn: Connection, cohort_id: str) -> datetime | None:
    return _aware(
        conn.execute(select(cohort_t.c.last_rollcall_at).where(cohort_t.c.id == cohort_id)).scalar()
    )


def set_last_rollcall(conn: Connection, cohort_id: str, at: datetime) -> None:
    conn.execute(update(cohort_t).where(cohort_t.c.id == cohort_id).values(last_rollcall_at=at))


def add_notice(
    conn: Connection,
    cohort_id: str,
    member_id: str,
    track: str,
    day: int,
    reason: str,
    at: datetime,
    private: bool,
) -> bool:
    """Record that a check-in did not count; False if this member was already told about
    this track and day."""
    return _insert_new(
        conn,
        notice_t,
        dict(
            cohort_id=cohort_id,
            member_id=member_id,
            track=track,
            day=day,
            reason=reason,
            at=at,
            private=private,
        ),
    )


def footer_notices(conn: Connection, cohort_id: str) -> list[tuple[str, str, str, int, str]]:
    """(member id, shown name, track, day, reason) of notices waiting for a roll call's footer."""
    q = (
        select(notice_t.c.member_id, _shown(notice_t), notice_t.c.track, notice_t.c.day, notice_t.c.reason)
        .select_from(_with_member(notice_t))
        .where(
            notice_t.c.cohort_id == cohort_id, notice_t.c.footer_at.is_(None), notice_t.c.private.is_(False)
        )
        .order_by(notice_t.c.at)
    )
    return [tuple(r) for r in conn.execute(q)]  # type: ignore[misc]


def cohorts_waiting_for_rollcall(conn: Connection) -> set[str]:
    """Cohorts with something a roll call has yet to name (after a restart)."""
    found: set[str] = set()
    for t, col in ((checkin_t, checkin_t.c.named_at), (grant_t, grant_t.c.named_at)):
        found |= set(conn.execute(select(t.c.cohort_id).where(col.is_(None)).distinct()).scalars())
    q = select(notice_t.c.cohort_id).where(notice_t.c.footer_at.is_(None), notice_t.c.private.is_(False))
    return found | set(conn.execute(q.distinct()).scalars())


def notices_to_footer(conn: Connection, cohort_id: str, member_id: str) -> None:
    """Notices meant for a private message the member cannot receive: the roll call's footer."""
    conn.execute(
        update(notice_t)
        .where(
            notice_t.c.cohort_id == cohort_id,
            notice_t.c.member_id == member_id,
            notice_t.c.footer_at.is_(None),
            notice_t.c.private.is_(True),
        )
        .values(private=False)
    )
