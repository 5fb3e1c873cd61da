"""The members of each group: who is there, in what role, and whether private messages reach them."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from storage.models import LEARNER, OPERATOR
from storage.repo._common import _aware, _in, _insert_new
from storage.repo.tables import member_t


@dataclass(frozen=True)
class MemberRow:
    member_id: str
    name: str
    alias: str | None
    present: bool
    role: str = LEARNER
    reachable: bool = True  # privately

    @property
    def shown(self) -> str:
        return self.alias or self.name


def member_joined(
    conn: Connection,
    cohort_id: str,
    member_id: str,
    name: str,
    alias: str | None,
    at: datetime,
    role: str = LEARNER,
) -> bool:
    """Record a member as present; True if they were not present before."""
    if _insert_new(
        conn,
        member_t,
        dict(
            cohort_id=cohort_id,
            member_id=member_id,
            name=name,
            alias=alias,
            present=True,
            joined_at=at,
            role=role,
        ),
    ):
        return True
    res = conn.execute(
        update(member_t)
        .where(
            member_t.c.cohort_id == cohort_id,
            member_t.c.member_id == member_id,
            member_t.c.present.is_(False),
        )
        .values(present=True, joined_at=at, left_at=None, name=name, alias=alias, role=role)
    )
    return res.rowcount == 1


def rename_member(
    conn: Connection, cohort_id: str, member_id: str, name: str, alias: str | None, role: str
) -> None:
    conn.execute(
        update(member_t)
        .where(member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id)
        .values(name=name, alias=alias, role=role)
    )


def member_left(conn: Connection, cohort_id: str, member_id: str, at: datetime) -> bool:
    res = conn.execute(
        update(member_t)
        .where(
            member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id, member_t.c.present.is_(True)
        )
        .values(present=False, left_at=at)
    )
    return res.rowcount == 1


_MEMBER_COLS = (
    member_t.c.member_id,
    member_t.c.name,
    member_t.c.alias,
    member_t.c.present,
    member_t.c.role,
    member_t.c.reachable,
)


def members(conn: Connection, cohort_id: str, present_only: bool = True) -> list[MemberRow]:
    """Everyone recorded in the cohort's group (operators too), in order of joining."""
    q = select(*_MEMBER_COLS).where(member_t.c.cohort_id == cohort_id)
    if present_only:
        q = q.where(member_t.c.present.is_(True))
    return [MemberRow(*r) for r in conn.execute(q.order_by(member_t.c.joined_at, member_t.c.member_id))]


def learners(conn: Connection, cohort_id: str) -> list[MemberRow]:
    """The members in the group now, less the operators: whom reminders and counts are about."""
    return [m for m in members(conn, cohort_id) if m.role == LEARNER]


def learners_to_remind(conn: Connection, cohort_id: str, joined_before: datetime) -> list[MemberRow]:
    """Learners in the group now who were already in it before ``joined_before`` (nobody is
    reminded of a day before they joined) and have not opted out (`mute`)."""
    q = (
        select(*_MEMBER_COLS)
        .where(
            member_t.c.cohort_id == cohort_id,
            member_t.c.present.is_(True),
            member_t.c.role == LEARNER,
            member_t.c.muted.is_(False),
            member_t.c.joined_at < joined_before,
        )
        .order_by(member_t.c.joined_at, member_t.c.member_id)
    )
    return [MemberRow(*r) for r in conn.execute(q)]


def member(conn: Connection, cohort_id: str, member_id: str) -> MemberRow | None:
    r = conn.execute(
        select(*_MEMBER_COLS).where(member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id)
    ).first()
    return MemberRow(*r) if r else None


def sync_members(
    conn: Connection,
    cohort_id: str,
    present: Sequence[tuple[str, str, str | None]],
    at: datetime,
    operators: Collection[str] = (),
    read_at: datetime | None = None,
) -> tuple[list[str], list[str]]:
    """Make the stored presence match the room's own member list (join events are not
    reliable). ``read_at``: when the list was asked for; a join or leave recorded after that
    (an event that arrived while the list was on its way) is newer than the list and kept.
    Returns (joined ids, left ids)."""
    q = select(
        member_t.c.member_id,
        member_t.c.name,
        member_t.c.alias,
        member_t.c.present,
        member_t.c.role,
        member_t.c.joined_at,
        member_t.c.left_at,
    ).where(member_t.c.cohort_id == cohort_id)
    known = {r[0]: r for r in conn.execute(q)}
    since = read_at or at

    def newer(value: Any) -> bool:
        return value is not None and _aware(value) >= since

    now_ids = {mid for mid, _, _ in present}
    joined = []
    for mid, name, alias in present:
        old = known.get(mid)
        role = OPERATOR if mid in operators else LEARNER
        if old is None or not old[3]:
            if old is not None and newer(old[6]):
                continue  # left while the list was being read
            member_joined(conn, cohort_id, mid, name, alias, at, role)
            joined.append(mid)
        elif (old[1], old[2], old[4]) != (name, alias, role):
            rename_member(conn, cohort_id, mid, name, alias, role)
    left = [mid for mid, r in known.items() if r[3] and mid not in now_ids and not newer(r[5])]
    for mid in left:
        member_left(conn, cohort_id, mid, at)
    return joined, left


def present_ids(conn: Connection, cohort_id: str) -> set[str]:
    q = select(member_t.c.member_id).where(member_t.c.cohort_id == cohort_id, member_t.c.present.is_(True))
    return set(conn.execute(q).scalars())


def joined_before(conn: Connection, cohort_id: str, member_id: str, before: datetime) -> bool:
    q = select(member_t.c.joined_at).where(
        member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id
    )
    at = conn.execute(q).scalar_one_or_none()
    return at is not None and _aware(at) < before


def set_reachable(
    conn: Connection, member_id: str, reachable: bool, cohorts: Collection[str] | None = None
) -> int:
    """Whether private messages reach this member, in these cohorts (None: every one);
    returns how many rows changed. Being a friend is a matter of one account: a process
    names its own cohorts, never another account's."""
    q = update(member_t).where(member_t.c.member_id == member_id, member_t.c.reachable.is_(not reachable))
    return conn.execute(_in(q, member_t, cohorts).values(reachable=reachable)).rowcount


def set_muted(conn: Connection, cohort_id: str, member_id: str, muted: bool) -> None:
    conn.execute(
        update(member_t)
        .where(member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id)
        .values(muted=muted)
    )


def reachable(conn: Connection, cohort_id: str, member_id: str) -> bool:
    r = conn.execute(
        select(member_t.c.reachable).where(
            member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id
        )
    ).scalar()
    return bool(r) if r is not None else True


def present_count(conn: Connection, cohort_id: str) -> int:
    """Learners in the group now ({total})."""
    return conn.execute(
        select(func.count())
        .select_from(member_t)
        .where(member_t.c.cohort_id == cohort_id, member_t.c.present.is_(True), member_t.c.role == LEARNER)
    ).scalar_one()


def muted_ids(conn: Connection, cohort_id: str) -> set[str]:
    """Members who opted out of @-mentions and nudges (the `mute` command)."""
    q = select(member_t.c.member_id).where(member_t.c.cohort_id == cohort_id, member_t.c.muted.is_(True))
    return set(conn.execute(q).scalars())
