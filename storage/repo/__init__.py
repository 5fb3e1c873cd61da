"""The queries the bot needs, named for what they mean. Each takes an open connection, so
the caller decides what one transaction holds (a check-in, its acknowledgement and any
reward it earns commit together)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Any

from sqlalchemy import Connection, Executable, Table, and_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import (
    LEARNER,
    OPERATOR,
    CheckIn,
    Cohort,
    Conversion,
    ItemRun,
    Leave,
    Member,
    MessageCount,
    Notice,
    OperatorAction,
    Outgoing,
    Question,
    RewardGrant,
    SurveyAnswer,
    SurveyProgress,
    Testimonial,
    UTCDateTime,
    WebLogin,
    WebSecret,
)

cohort_t: Table = Cohort.__table__  # type: ignore[attr-defined]
member_t: Table = Member.__table__  # type: ignore[attr-defined]
checkin_t: Table = CheckIn.__table__  # type: ignore[attr-defined]
grant_t: Table = RewardGrant.__table__  # type: ignore[attr-defined]
item_t: Table = ItemRun.__table__  # type: ignore[attr-defined]
out_t: Table = Outgoing.__table__  # type: ignore[attr-defined]
notice_t: Table = Notice.__table__  # type: ignore[attr-defined]
leave_t: Table = Leave.__table__  # type: ignore[attr-defined]
action_t: Table = OperatorAction.__table__  # type: ignore[attr-defined]
message_t: Table = MessageCount.__table__  # type: ignore[attr-defined]
question_t: Table = Question.__table__  # type: ignore[attr-defined]
progress_t: Table = SurveyProgress.__table__  # type: ignore[attr-defined]
answer_t: Table = SurveyAnswer.__table__  # type: ignore[attr-defined]
testimonial_t: Table = Testimonial.__table__  # type: ignore[attr-defined]
conversion_t: Table = Conversion.__table__  # type: ignore[attr-defined]
web_login_t: Table = WebLogin.__table__  # type: ignore[attr-defined]
web_secret_t: Table = WebSecret.__table__  # type: ignore[attr-defined]


def _in(q: Any, table: Table, cohorts: Collection[str] | None) -> Any:
    """``q`` limited to rows of these cohorts; None: every cohort. Processes that share one
    database (one per WeChat account, bot/runner.py) each pass the cohorts they hold, so
    none touches another's rows."""
    return q if cohorts is None else q.where(table.c.cohort_id.in_(list(cohorts)))


@cache
def _insert_new_stmt(dialect_name: str, table: Table) -> Executable:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    # RETURNING, not rowcount: PostgreSQL reports -1 for an insert that returns its key.
    return dialect.insert(table).on_conflict_do_nothing().returning(*table.primary_key.columns)


def _insert_new(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless the row's unique key exists; True if this call created it."""
    # Statements on the check-in path are built once and executed with parameters: building
    # a statement per call costs more than SQLite takes to run it.
    return conn.execute(_insert_new_stmt(conn.dialect.name, table), values).first() is not None


# --- cohorts -------------------------------------------------------------------------


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


# --- members -------------------------------------------------------------------------


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


def joined_before(conn: Connection, cohort_id: str, member_id: str, before: datetime) -> bool:
    q = select(member_t.c.joined_at).where(
        member_t.c.cohort_id == cohort_id, member_t.c.member_id == member_id
    )
    at = conn.execute(q).scalar_one_or_none()
    return at is not None and _aware(at) < before


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


# --- leave, pause, the operators' audit log ------------------------------------------------


def add_leave(conn: Connection, cohort_id: str, member_id: str, day: int, at: datetime) -> bool:
    """A day's leave; False if it was already taken."""
    return _insert_new(conn, leave_t, dict(cohort_id=cohort_id, member_id=member_id, day=day, at=at))


def on_leave_ids(conn: Connection, cohort_id: str, day: int) -> set[str]:
    q = select(leave_t.c.member_id).where(leave_t.c.cohort_id == cohort_id, leave_t.c.day == day)
    return set(conn.execute(q).scalars())


def paused(conn: Connection, cohort_id: str) -> tuple[datetime, str | None] | None:
    """(since, by whom) when the cohort is paused."""
    r = conn.execute(
        select(cohort_t.c.paused_at, cohort_t.c.paused_by).where(cohort_t.c.id == cohort_id)
    ).first()
    return (_aware(r[0]), r[1]) if r and r[0] is not None else None


def set_paused(conn: Connection, cohort_id: str, at: datetime | None, by: str | None) -> None:
    conn.execute(update(cohort_t).where(cohort_t.c.id == cohort_id).values(paused_at=at, paused_by=by))


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


def queue_counts(conn: Connection, cohort_ids: Sequence[str]) -> tuple[int, int]:
    """(messages waiting to be sent, messages that failed) for these cohorts."""
    q = (
        select(out_t.c.status, func.count())
        .where(out_t.c.cohort_id.in_(cohort_ids), out_t.c.status.in_(("pending", "sending", "failed")))
        .group_by(out_t.c.status)
    )
    counts: dict[str, int] = {status: n for status, n in conn.execute(q).all()}
    return counts.get("pending", 0) + counts.get("sending", 0), counts.get("failed", 0)


def bulk_sent_since(conn: Connection, cohort_id: str, kind: str, since: datetime) -> int:
    """Bulk private messages (priority 2) of a kind queued since ``since``: the hour's budget."""
    return conn.execute(
        select(func.count())
        .select_from(out_t)
        .where(
            out_t.c.cohort_id == cohort_id,
            out_t.c.kind == kind,
            out_t.c.priority == 2,
            out_t.c.created_at >= since,
        )
    ).scalar_one()


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


# --- roll calls ---------------------------------------------------------------------------


def _with_member(table: Table) -> Any:
    """``table`` joined to the member it is about (kept when the member row is missing)."""
    on = and_(member_t.c.cohort_id == table.c.cohort_id, member_t.c.member_id == table.c.member_id)
    return table.outerjoin(member_t, on)


def _shown(table: Table) -> Any:
    """How the member of a ``_with_member`` row is shown: group alias, name, else the id."""
    return func.coalesce(member_t.c.alias, member_t.c.name, table.c.member_id)


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


def set_reachable(
    conn: Connection, member_id: str, reachable: bool, cohorts: Collection[str] | None = None
) -> int:
    """Whether private messages reach this member, in these cohorts (None: every one);
    returns how many rows changed. Being a friend is a matter of one account: a process
    names its own cohorts, never another account's."""
    q = update(member_t).where(member_t.c.member_id == member_id, member_t.c.reachable.is_(not reachable))
    return conn.execute(_in(q, member_t, cohorts).values(reachable=reachable)).rowcount


def last_private_sent(
    conn: Connection, member_id: str, since: datetime, cohorts: Collection[str] | None = None
) -> OutRow | None:
    """The private message sent to this member most recently, if since ``since``."""
    q = (
        select(*_OUT_COLS)
        .where(out_t.c.member_id == member_id, out_t.c.status == "sent", out_t.c.sent_at >= since)
        .order_by(out_t.c.sent_at.desc(), out_t.c.id.desc())
        .limit(1)
    )
    r = conn.execute(_in(q, out_t, cohorts)).first()
    return _out_row(r) if r else None


def held_rewards(conn: Connection, member_id: str, cohorts: Collection[str] | None = None) -> list[int]:
    """Reward messages held for a member who could not be reached privately."""
    q = select(out_t.c.id).where(
        out_t.c.member_id == member_id, out_t.c.kind == "reward", out_t.c.status == "unreachable"
    )
    return list(conn.execute(_in(q, out_t, cohorts)).scalars())


def release(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids))).values(status="pending", not_before=now, attempts=0)
    )


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


def present_count(conn: Connection, cohort_id: str) -> int:
    """Learners in the group now ({total})."""
    return conn.execute(
        select(func.count())
        .select_from(member_t)
        .where(member_t.c.cohort_id == cohort_id, member_t.c.present.is_(True), member_t.c.role == LEARNER)
    ).scalar_one()


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


def _aware(value: Any) -> Any:
    # min()/max() over a typed column come back untyped from SQLite: restore the UTC type.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, None)  # type: ignore[return-value]


def checkins_by_day(conn: Connection, cohort_id: str) -> dict[tuple[str, int], int]:
    q = (
        select(checkin_t.c.track, checkin_t.c.day, func.count())
        .where(checkin_t.c.cohort_id == cohort_id)
        .group_by(checkin_t.c.track, checkin_t.c.day)
    )
    return {(t, d): n for t, d, n in conn.execute(q)}


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


# --- schedule items ---------------------------------------------------------------------


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


# --- outbox -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutRow:
    id: int
    cohort_id: str
    room_id: str | None
    member_id: str | None
    text: str
    mentions: tuple[str, ...]
    kind: str
    priority: int
    not_before: datetime
    created_at: datetime

    @property
    def chat(self) -> str:
        return f"room:{self.room_id}" if self.room_id is not None else f"dm:{self.member_id}"


def enqueue(
    conn: Connection,
    cohort_id: str,
    *,
    text: str,
    kind: str,
    now: datetime,
    room_id: str | None = None,
    member_id: str | None = None,
    mentions: Sequence[str] = (),
    priority: int = 0,
    not_before: datetime | None = None,
    image: bytes | None = None,
) -> int:
    """Queue a message (or, with ``image``, a picture named ``text``); returns its row id."""
    if (room_id is None) == (member_id is None):
        raise ValueError("a message goes to a room or to a member")
    res = conn.execute(
        _ENQUEUE,
        dict(
            cohort_id=cohort_id,
            room_id=room_id,
            member_id=member_id,
            text=text,
            mentions=json.dumps(list(mentions), ensure_ascii=False) if mentions else "",
            kind=kind,
            priority=priority,
            created_at=now,
            not_before=not_before or now,
            status="pending",
            image=image,
        ),
    )
    key = res.inserted_primary_key
    assert key is not None
    return int(key[0])


_ENQUEUE = out_t.insert()


def image_of(conn: Connection, row_id: int) -> bytes | None:
    """The picture of a queued image row (kept out of OutRow: the queue is read often)."""
    return conn.execute(select(out_t.c.image).where(out_t.c.id == row_id)).scalar_one_or_none()


def still_pending(conn: Connection, ids: Sequence[int]) -> int:
    """How many of these rows are still waiting to be sent."""
    q = select(func.count()).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending")
    return int(conn.execute(q).scalar_one())


_OUT_COLS = (
    out_t.c.id,
    out_t.c.cohort_id,
    out_t.c.room_id,
    out_t.c.member_id,
    out_t.c.text,
    out_t.c.mentions,
    out_t.c.kind,
    out_t.c.priority,
    out_t.c.not_before,
    out_t.c.created_at,
)


def _out_row(r: Any) -> OutRow:
    return OutRow(
        r[0], r[1], r[2], r[3], r[4], tuple(json.loads(r[5])) if r[5] else (), r[6], r[7], r[8], r[9]
    )


_NEXT_READY = (
    select(*_OUT_COLS)
    .where(out_t.c.status == "pending", out_t.c.not_before <= bindparam("now"))
    .order_by(out_t.c.priority, out_t.c.id)
    .limit(1)
)
_NEXT_WAKEUP = select(func.min(out_t.c.not_before)).where(out_t.c.status == "pending")
_FOLDABLE = (
    select(*_OUT_COLS)
    .where(
        out_t.c.status == "pending",
        out_t.c.room_id == bindparam("room"),
        out_t.c.kind.in_(bindparam("kinds", expanding=True)),
    )
    .order_by(out_t.c.id)
    .limit(bindparam("limit"))
)
# The same, for one process among several on the database: its own cohorts' rows only.
_MINE = out_t.c.cohort_id.in_(bindparam("cohorts", expanding=True))
_SCOPED = {q: q.where(_MINE) for q in (_NEXT_READY, _NEXT_WAKEUP, _FOLDABLE)}


def _run_scoped(conn: Connection, q: Any, params: dict[str, Any], cohorts: Collection[str] | None) -> Any:
    """Run a prepared outbox query, limited to ``cohorts`` unless None."""
    if cohorts is None:
        return conn.execute(q, params)
    return conn.execute(_SCOPED[q], {**params, "cohorts": list(cohorts)})


def next_ready(conn: Connection, now: datetime, cohorts: Collection[str] | None = None) -> OutRow | None:
    """The message to send next: the first pending one whose wait is over."""
    r = _run_scoped(conn, _NEXT_READY, {"now": now}, cohorts).first()
    return _out_row(r) if r else None


def next_wakeup(conn: Connection, cohorts: Collection[str] | None = None) -> datetime | None:
    """When the earliest pending message may go, or None if nothing is pending."""
    return _aware(_run_scoped(conn, _NEXT_WAKEUP, {}, cohorts).scalar())


def foldable(
    conn: Connection,
    room_id: str,
    kinds: Collection[str],
    limit: int,
    cohorts: Collection[str] | None = None,
) -> list[OutRow]:
    """Pending notices of these kinds to one room, oldest first."""
    params = {"room": room_id, "kinds": list(kinds), "limit": limit}
    return [_out_row(r) for r in _run_scoped(conn, _FOLDABLE, params, cohorts)]


def mark(
    conn: Connection, ids: Sequence[int], status: str, at: datetime | None = None, error: str | None = None
) -> None:
    values: dict[str, Any] = {"status": status}
    if status == "sent":
        values["sent_at"] = at
    if status in ("sent", "unknown", "failed") and len(ids) > 0:
        values["batch"] = ids[0]  # rows that went out (or were tried) together as one message
    if error is not None:
        values["error"] = error[:500]
    conn.execute(update(out_t).where(out_t.c.id.in_(list(ids))).values(**values))


def claim_sends(conn: Connection, ids: Sequence[int]) -> list[int]:
    """Move pending rows to `sending`; returns the ids this call claimed, so that a second
    sender on the same database can never send the same row."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending")
        .values(status="sending", attempts=out_t.c.attempts + 1)
        .returning(out_t.c.id)
    )
    return sorted(res.scalars())


def retry_later(conn: Connection, ids: Sequence[int], not_before: datetime, error: str) -> None:
    conn.execute(
        update(out_t)
        .where(out_t.c.id.in_(list(ids)))
        .values(status="pending", not_before=not_before, error=error[:500])
    )


def attempts(conn: Connection, ids: Sequence[int]) -> dict[int, int]:
    """How many times each row has been tried."""
    q = select(out_t.c.id, out_t.c.attempts).where(out_t.c.id.in_(list(ids)))
    return {i: n for i, n in conn.execute(q)}


def interrupted_sends(conn: Connection, cohorts: Collection[str] | None = None) -> list[OutRow]:
    """Rows a previous run started sending but never marked: whether WeChat got them is
    unknown, so they are not sent again. (Another process's `sending` rows are its sends in
    flight: ``cohorts`` keeps them out.)"""
    q = select(*_OUT_COLS).where(out_t.c.status == "sending")
    return [_out_row(r) for r in conn.execute(_in(q, out_t, cohorts))]


def stale_pending(conn: Connection, before: datetime, cohorts: Collection[str] | None = None) -> list[OutRow]:
    """Pending group messages that were due before ``before``: a notice hours late makes no
    sense. Private messages (replies, nudges, rewards, alerts) always go."""
    q = select(*_OUT_COLS).where(
        out_t.c.status == "pending", out_t.c.not_before < before, out_t.c.room_id.is_not(None)
    )
    return [_out_row(r) for r in conn.execute(_in(q, out_t, cohorts))]


def update_pending_text(
    conn: Connection, ids: Sequence[int], text: str, not_before: datetime | None = None
) -> int:
    """Rewrite messages not sent yet (and, given ``not_before``, hold them till then);
    returns how many were still pending."""
    values: dict[str, Any] = {"text": text}
    if not_before is not None:
        values["not_before"] = not_before
    res = conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending").values(**values)
    )
    return res.rowcount


def cancel_pending(conn: Connection, ids: Sequence[int]) -> int:
    res = conn.execute(
        update(out_t).where(out_t.c.id.in_(list(ids)), out_t.c.status == "pending").values(status="cancelled")
    )
    return res.rowcount


def unknown_batches(
    conn: Connection,
    room_id: str | None,
    member_id: str | None,
    since: datetime,
    cohorts: Collection[str] | None = None,
) -> list[tuple[str, list[int], str]]:
    """Messages to one chat whose send was cut (status `unknown`) since ``since``: (cohort,
    row ids, the text as the sender joined it), one entry per message tried."""
    q = select(out_t.c.id, out_t.c.batch, out_t.c.text, out_t.c.cohort_id).where(
        out_t.c.status == "unknown", out_t.c.created_at >= since
    )
    q = _in(q, out_t, cohorts)
    if room_id is not None:
        q = q.where(out_t.c.room_id == room_id)
    else:
        q = q.where(out_t.c.member_id == member_id)
    batches: dict[int, tuple[str, list[int], list[str]]] = {}
    for rid, batch, text, cohort in conn.execute(q.order_by(out_t.c.id)):
        _, ids, texts = batches.setdefault(batch or rid, (cohort, [], []))
        ids.append(rid)
        texts.append(text)
    return [(c, ids, "\n".join(texts)) for c, ids, texts in batches.values()]


def repoint_room(conn: Connection, cohort_id: str, old: str, new: str) -> int:
    """Queued group messages follow the room to its new id (a gateway that renumbered)."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.room_id == old, out_t.c.status == "pending")
        .values(room_id=new)
    )
    return res.rowcount


def recent_sends(
    conn: Connection, since: datetime, cohorts: Collection[str] | None = None
) -> list[tuple[str, datetime]]:
    """(chat, sent at) of the messages sent since ``since``, oldest first: the pacing
    history a restart must not forget (one account's: its own cohorts')."""
    q = (
        select(out_t.c.room_id, out_t.c.member_id, out_t.c.sent_at)
        .where(out_t.c.status == "sent", out_t.c.sent_at >= since, out_t.c.batch == out_t.c.id)
        .order_by(out_t.c.sent_at)
    )
    rows = conn.execute(_in(q, out_t, cohorts))
    return [(f"room:{r}" if r is not None else f"dm:{m}", a) for r, m, a in rows]


def sent_log(conn: Connection, cohort_id: str) -> list[tuple[str, datetime, int, int]]:
    """(kind, sent at, number of @-mentions, batch) of every row sent, in order."""
    q = (
        select(out_t.c.kind, out_t.c.sent_at, out_t.c.mentions, out_t.c.batch)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.status == "sent")
        .order_by(out_t.c.id)
    )
    return [(k, a, len(json.loads(m)) if m else 0, b) for k, a, m, b in conn.execute(q)]


def update_pending_message(conn: Connection, row_id: int, text: str, mentions: Sequence[str]) -> bool:
    """Rewrite a message not sent yet, text and @s (more askers joined a folded answer);
    False if it is already on its way."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id == row_id, out_t.c.status == "pending")
        .values(text=text, mentions=json.dumps(list(mentions), ensure_ascii=False) if mentions else "")
    )
    return res.rowcount == 1


# --- questions ------------------------------------------------------------------------------

_question_waits = and_(question_t.c.answered_at.is_(None), question_t.c.digest_at.is_(None))


@dataclass(frozen=True)
class WaitingQuestion:
    id: int
    member_id: str
    name: str
    text: str
    private: bool
    asked_at: datetime


def add_question(
    conn: Connection, cohort_id: str, member_id: str, text: str, at: datetime, private: bool
) -> bool:
    """Record a question; False if the member's same question already waits."""
    same = select(question_t.c.id).where(
        question_t.c.cohort_id == cohort_id,
        question_t.c.member_id == member_id,
        question_t.c.text == text,
        _question_waits,
    )
    if conn.execute(same.limit(1)).first() is not None:
        return False
    conn.execute(
        question_t.insert().values(
            cohort_id=cohort_id, member_id=member_id, text=text, private=private, asked_at=at
        )
    )
    return True


def answer_questions(
    conn: Connection, cohort_id: str, at: datetime, member_ids: Collection[str] | None = None
) -> int:
    """An operator answered: the waiting questions asked before ``at`` of these members (group
    and private), or, without members, every waiting question asked in the group."""
    q = update(question_t).where(
        question_t.c.cohort_id == cohort_id, _question_waits, question_t.c.asked_at <= at
    )
    if member_ids is None:
        q = q.where(question_t.c.private.is_(False))
    else:
        q = q.where(question_t.c.member_id.in_(list(member_ids)))
    return conn.execute(q.values(answered_at=at)).rowcount


def oldest_question(conn: Connection, cohort_id: str) -> datetime | None:
    """When the oldest question still waiting for an answer was asked."""
    q = select(func.min(question_t.c.asked_at)).where(question_t.c.cohort_id == cohort_id, _question_waits)
    return _aware(conn.execute(q).scalar())


def last_digest(conn: Connection, cohort_id: str) -> datetime | None:
    q = select(func.max(question_t.c.digest_at)).where(question_t.c.cohort_id == cohort_id)
    return _aware(conn.execute(q).scalar())


def waiting_questions(conn: Connection, cohort_id: str, asked_by: datetime) -> list[WaitingQuestion]:
    """The questions asked by ``asked_by`` that still wait, oldest first, with who asked."""
    q = (
        select(
            question_t.c.id,
            question_t.c.member_id,
            _shown(question_t),
            question_t.c.text,
            question_t.c.private,
            question_t.c.asked_at,
        )
        .select_from(_with_member(question_t))
        .where(question_t.c.cohort_id == cohort_id, _question_waits, question_t.c.asked_at <= asked_by)
        .order_by(question_t.c.asked_at, question_t.c.id)
    )
    return [WaitingQuestion(i, m, n, t, bool(p), _aware(a)) for i, m, n, t, p, a in conn.execute(q)]


def mark_digested(conn: Connection, ids: Sequence[int], at: datetime) -> None:
    conn.execute(update(question_t).where(question_t.c.id.in_(list(ids))).values(digest_at=at))


# --- the questionnaire (bot/survey.py) ----------------------------------------------------


@dataclass(frozen=True)
class Progress:
    member: MemberRow
    question: int
    again: bool  # asked again after an answer that was none of the choices


def _progress_of(cohort_id: str, survey_id: str) -> Any:
    """Progress rows still under way, with their member, in the group now (a member who left
    is asked nothing more), learners only."""
    return (
        select(*_MEMBER_COLS, progress_t.c.question, progress_t.c.again_at.is_not(None))
        .join(
            member_t,
            and_(
                member_t.c.cohort_id == progress_t.c.cohort_id,
                member_t.c.member_id == progress_t.c.member_id,
            ),
        )
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.survey_id == survey_id,
            progress_t.c.done_at.is_(None),
            progress_t.c.link_at.is_(None),
            member_t.c.present.is_(True),
            member_t.c.role == LEARNER,
        )
        .order_by(progress_t.c.started_at, progress_t.c.member_id)
    )


def _progress(rows: Any) -> list[Progress]:
    return [Progress(MemberRow(*r[:6]), r[6], bool(r[7])) for r in rows]


def survey_claim_everyone(conn: Connection, cohort_id: str, survey_id: str, now: datetime) -> int:
    """Claim the questionnaire for every learner in the group who has not had it; returns how
    many were claimed (their first question waits to be asked)."""
    had = select(progress_t.c.member_id).where(
        progress_t.c.cohort_id == cohort_id, progress_t.c.survey_id == survey_id
    )
    q = select(member_t.c.member_id).where(
        member_t.c.cohort_id == cohort_id,
        member_t.c.present.is_(True),
        member_t.c.role == LEARNER,
        member_t.c.member_id.not_in(had),
    )
    claimed = 0
    for mid in list(conn.execute(q).scalars()):
        row = dict(cohort_id=cohort_id, member_id=mid, survey_id=survey_id, question=0, started_at=now)
        claimed += _insert_new(conn, progress_t, row)
    return claimed


def survey_to_ask(
    conn: Connection, cohort_id: str, survey_id: str, member_id: str | None = None
) -> list[Progress]:
    """Members whose next question waits to be asked (all, or one)."""
    q = _progress_of(cohort_id, survey_id).where(progress_t.c.asked_at.is_(None))
    if member_id is not None:
        q = q.where(progress_t.c.member_id == member_id)
    return _progress(conn.execute(q))


def survey_ask(
    conn: Connection, cohort_id: str, member_id: str, survey_id: str, question: int, at: datetime
) -> bool:
    """Claim the asking of ``question`` (before it is queued): False if it was asked already."""
    res = conn.execute(
        update(progress_t)
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.member_id == member_id,
            progress_t.c.survey_id == survey_id,
            progress_t.c.question == question,
            progress_t.c.asked_at.is_(None),
        )
        .values(asked_at=at)
    )
    return res.rowcount == 1


def survey_asked_in(conn: Connection, cohort_id: str, member_id: str, survey_id: str, row: int) -> None:
    """The outbox row that carries the question just claimed."""
    _progress_update(conn, cohort_id, member_id, survey_id, asked_row=row)


def survey_open(
    conn: Connection, cohort_id: str, member_id: str, survey_id: str, now: datetime
) -> Progress | None:
    """The member's question waiting for an answer: asked, and its message gone out (a
    message sent before the question reached them is not its answer)."""
    waiting = select(out_t.c.id).where(out_t.c.status.in_(("pending", "sending")))
    q = _progress_of(cohort_id, survey_id).where(
        progress_t.c.member_id == member_id,
        progress_t.c.asked_at <= now,
        progress_t.c.asked_row.is_(None) | progress_t.c.asked_row.not_in(waiting),
    )
    found = _progress(conn.execute(q))
    return found[0] if found else None


def _progress_update(conn: Connection, cohort_id: str, member_id: str, survey_id: str, **values: Any) -> None:
    conn.execute(
        update(progress_t)
        .where(
            progress_t.c.cohort_id == cohort_id,
            progress_t.c.member_id == member_id,
            progress_t.c.survey_id == survey_id,
        )
        .values(**values)
    )


def survey_again(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, again_at=at)


def survey_answered(
    conn: Connection,
    cohort_id: str,
    member_id: str,
    survey_id: str,
    question: int,
    text: str,
    choice: int | None,
    at: datetime,
    done: bool,
) -> bool:
    """Keep the answer and move on to the next question (or finish); False if that question
    was answered already."""
    row = dict(
        cohort_id=cohort_id,
        member_id=member_id,
        survey_id=survey_id,
        question=question,
        text=text,
        choice=choice,
        at=at,
    )
    if not _insert_new(conn, answer_t, row):
        return False
    _progress_update(
        conn,
        cohort_id,
        member_id,
        survey_id,
        question=question + 1,
        asked_at=None,
        asked_row=None,
        again_at=None,
        done_at=at if done else None,
    )
    return True


def survey_finished(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    """Nothing more to ask (the playbook's questions were cut short by an edit)."""
    _progress_update(conn, cohort_id, member_id, survey_id, done_at=at)


def survey_to_remind(
    conn: Connection, cohort_id: str, survey_id: str, asked_before: datetime
) -> list[Progress]:
    """Members reachable privately whose question has waited since before ``asked_before``
    and who have not had their one reminder."""
    q = _progress_of(cohort_id, survey_id).where(
        progress_t.c.asked_at <= asked_before,
        progress_t.c.reminded_at.is_(None),
        member_t.c.reachable.is_(True),
    )
    return _progress(conn.execute(q))


def survey_first_unreminded(conn: Connection, cohort_id: str, survey_id: str) -> datetime | None:
    """When the longest-waiting question that may still be reminded of was asked."""
    q = (
        _progress_of(cohort_id, survey_id)
        .where(
            progress_t.c.asked_at.is_not(None),
            progress_t.c.reminded_at.is_(None),
            member_t.c.reachable.is_(True),
        )
        .with_only_columns(func.min(progress_t.c.asked_at))
        .order_by(None)
    )
    return _aware(conn.execute(q).scalar())


def survey_reminded(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, reminded_at=at)


def survey_still_asking(conn: Connection, cohort_id: str, member_id: str, survey_id: str) -> bool:
    """The member has the questionnaire under way (not finished, not given the link)."""
    q = select(progress_t.c.member_id).where(
        progress_t.c.cohort_id == cohort_id,
        progress_t.c.member_id == member_id,
        progress_t.c.survey_id == survey_id,
        progress_t.c.done_at.is_(None),
        progress_t.c.link_at.is_(None),
    )
    return conn.execute(q).first() is not None


def survey_linked(conn: Connection, cohort_id: str, member_id: str, survey_id: str, at: datetime) -> None:
    _progress_update(conn, cohort_id, member_id, survey_id, link_at=at)


def pending_group_row(conn: Connection, cohort_id: str, kind: str) -> OutRow | None:
    """The newest message of this kind still waiting to go to the cohort's group."""
    q = (
        select(*_OUT_COLS)
        .where(
            out_t.c.cohort_id == cohort_id,
            out_t.c.kind == kind,
            out_t.c.status == "pending",
            out_t.c.room_id.is_not(None),
        )
        .order_by(out_t.c.id.desc())
        .limit(1)
    )
    r = conn.execute(q).first()
    return _out_row(r) if r else None


def set_pending_mentions(conn: Connection, row_id: int, mentions: Sequence[str]) -> bool:
    """The members a message not sent yet @-mentions; False if it has gone meanwhile."""
    res = conn.execute(
        update(out_t)
        .where(out_t.c.id == row_id, out_t.c.status == "pending")
        .values(mentions=json.dumps(list(mentions), ensure_ascii=False))
    )
    return res.rowcount == 1


@dataclass(frozen=True)
class SurveyRow:
    member_id: str
    name: str  # as shown in the group (alias, else name, else the id)
    question: int
    text: str
    choice: int | None
    at: datetime


def survey_ids(conn: Connection, cohort_id: str) -> list[str]:
    """The questionnaires the cohort has records of, the most recently started first."""
    q = (
        select(progress_t.c.survey_id, func.max(progress_t.c.started_at).label("last"))
        .where(progress_t.c.cohort_id == cohort_id)
        .group_by(progress_t.c.survey_id)
        .order_by(func.max(progress_t.c.started_at).desc(), progress_t.c.survey_id)
    )
    return [r[0] for r in conn.execute(q)]


def survey_counts(conn: Connection, cohort_id: str, survey_id: str) -> dict[str, int]:
    """How many members had the questionnaire (`invited`), were asked privately (`asked`),
    were given the link instead (`linked`), answered at least once (`answered`), finished
    (`done`)."""
    p = progress_t.c
    q = select(
        func.count(),
        func.count(p.link_at),
        func.count(p.done_at),
    ).where(p.cohort_id == cohort_id, p.survey_id == survey_id)
    invited, linked, done = conn.execute(q).one()
    answered = conn.execute(
        select(func.count(func.distinct(answer_t.c.member_id))).where(
            answer_t.c.cohort_id == cohort_id, answer_t.c.survey_id == survey_id
        )
    ).scalar_one()
    return {
        "invited": invited,
        "asked": invited - linked,
        "linked": linked,
        "answered": answered,
        "done": done,
    }


def survey_answers(conn: Connection, cohort_id: str, survey_id: str) -> list[SurveyRow]:
    """Every answer, by question, then in the order they came."""
    q = (
        select(
            answer_t.c.member_id,
            member_t.c.alias,
            member_t.c.name,
            answer_t.c.question,
            answer_t.c.text,
            answer_t.c.choice,
            answer_t.c.at,
        )
        .select_from(answer_t)
        .outerjoin(
            member_t,
            and_(member_t.c.cohort_id == answer_t.c.cohort_id, member_t.c.member_id == answer_t.c.member_id),
        )
        .where(answer_t.c.cohort_id == cohort_id, answer_t.c.survey_id == survey_id)
        .order_by(answer_t.c.question, answer_t.c.at, answer_t.c.member_id)
    )
    return [
        SurveyRow(mid, alias or name or mid, question, text, choice, _aware(at))
        for mid, alias, name, question, text, choice, at in conn.execute(q)
    ]


# --- testimonials (心得) and conversions (报名) ----------------------------------------------


@dataclass(frozen=True)
class TestimonialRow:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    id: int
    member_id: str
    name: str  # as shown: group alias, name, else the id
    track: str
    day: int
    at: datetime
    text: str
    featured_at: datetime | None
    featured_by: str | None


def add_testimonial(
    conn: Connection, cohort_id: str, member_id: str, track: str, day: int, at: datetime, text: str
) -> bool:
    """Keep a testimonial's text; False if this member's same text is kept already."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    values = dict(cohort_id=cohort_id, member_id=member_id, track=track, day=day, at=at, text=text)
    return _insert_new(conn, testimonial_t, {**values, "digest": digest})


def testimonials(
    conn: Connection,
    cohort_id: str,
    member_id: str | None = None,
    featured_only: bool = False,
    newest_first: bool = False,
    limit: int | None = None,
) -> list[TestimonialRow]:
    t = testimonial_t
    q = select(
        t.c.id,
        t.c.member_id,
        _shown(t),
        t.c.track,
        t.c.day,
        t.c.at,
        t.c.text,
        t.c.featured_at,
        t.c.featured_by,
    ).select_from(_with_member(t))
    q = q.where(t.c.cohort_id == cohort_id)
    if member_id is not None:
        q = q.where(t.c.member_id == member_id)
    if featured_only:
        q = q.where(t.c.featured_at.is_not(None))
    q = q.order_by(t.c.at.desc(), t.c.id.desc()) if newest_first else q.order_by(t.c.at, t.c.id)
    if limit is not None:
        q = q.limit(limit)
    return [TestimonialRow(*r) for r in conn.execute(q)]


def set_featured(conn: Connection, testimonial_id: int, at: datetime | None, by: str | None) -> None:
    """Feature a testimonial (精选), or take the mark away (``at`` None)."""
    conn.execute(
        update(testimonial_t)
        .where(testimonial_t.c.id == testimonial_id)
        .values(featured_at=at, featured_by=by)
    )


@dataclass(frozen=True)
class ConversionRow:
    member_id: str
    name: str  # as shown
    at: datetime
    source: str  # an operator's id, or "import:<file>"


def add_conversion(conn: Connection, cohort_id: str, member_id: str, at: datetime, source: str) -> bool:
    """Mark a member converted (bought the full course); False if marked before."""
    return _insert_new(
        conn, conversion_t, dict(cohort_id=cohort_id, member_id=member_id, at=at, source=source)
    )


def remove_conversion(conn: Connection, cohort_id: str, member_id: str) -> bool:
    res = conn.execute(
        conversion_t.delete().where(
            conversion_t.c.cohort_id == cohort_id, conversion_t.c.member_id == member_id
        )
    )
    return res.rowcount == 1


def conversions(conn: Connection, cohort_id: str, member_id: str | None = None) -> list[ConversionRow]:
    c = conversion_t
    q = select(c.c.member_id, _shown(c), c.c.at, c.c.source).select_from(_with_member(c))
    q = q.where(c.c.cohort_id == cohort_id).order_by(c.c.at, c.c.member_id)
    if member_id is not None:
        q = q.where(c.c.member_id == member_id)
    return [ConversionRow(*r) for r in conn.execute(q)]


def reminder_reach(conn: Connection, cohort_id: str) -> tuple[set[str], set[str]]:
    """(reached, meant): the members a reminder @-mentioned or a nudge was for, and of those
    the ones one reached: a reminder sent to the group with them in its @s, or a nudge sent
    to them privately."""
    q = select(out_t.c.kind, out_t.c.member_id, out_t.c.mentions, out_t.c.status).where(
        out_t.c.cohort_id == cohort_id, out_t.c.kind.in_(("remind", "nudge"))
    )
    reached: set[str] = set()
    meant: set[str] = set()
    for kind, member_id, mentions, status in conn.execute(q):
        ids = [member_id] if kind == "nudge" else (json.loads(mentions) if mentions else [])
        meant.update(ids)
        if status == "sent":
            reached.update(ids)
    return reached, meant


# --- members' messages (the report's "spoke") ----------------------------------------------


@cache
def _count_message_stmt(dialect_name: str) -> Executable:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    insert = dialect.insert(message_t).values(
        cohort_id=bindparam("cohort"), member_id=bindparam("member"), day=bindparam("day"), messages=1
    )
    return insert.on_conflict_do_update(
        index_elements=list(message_t.primary_key.columns), set_={"messages": message_t.c.messages + 1}
    )


def count_message(conn: Connection, cohort_id: str, member_id: str, day: int) -> None:
    """One more group message from a member on a cohort day: one UPSERT, built once (this
    runs for every message in the group)."""
    params = {"cohort": cohort_id, "member": member_id, "day": day}
    conn.execute(_count_message_stmt(conn.dialect.name), params)


def message_counts(conn: Connection, cohort_id: str) -> dict[tuple[str, int], int]:
    """(member id, day) -> group messages that day."""
    q = select(message_t.c.member_id, message_t.c.day, message_t.c.messages).where(
        message_t.c.cohort_id == cohort_id
    )
    return {(m, d): n for m, d, n in conn.execute(q)}


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


def leave_days(conn: Connection, cohort_id: str) -> set[tuple[str, int]]:
    """(member id, day) of every leave taken."""
    q = select(leave_t.c.member_id, leave_t.c.day).where(leave_t.c.cohort_id == cohort_id)
    return {(m, d) for m, d in conn.execute(q)}


# --- the web console's logins -------------------------------------------------------------


@dataclass(frozen=True)
class WebLoginRow:
    name: str
    password_hash: str
    cohorts: tuple[str, ...]  # empty: every cohort


def set_web_login(
    conn: Connection, name: str, password_hash: str, cohorts: Sequence[str], at: datetime
) -> bool:
    """Add an operator's login, or replace her password and cohorts; True if she is new."""
    values = dict(password_hash=password_hash, cohorts=",".join(cohorts))
    if _insert_new(conn, web_login_t, dict(name=name, created_at=at, **values)):
        return True
    conn.execute(update(web_login_t).where(web_login_t.c.name == name).values(**values))
    return False


def web_login(conn: Connection, name: str) -> WebLoginRow | None:
    r = conn.execute(select(web_login_t).where(web_login_t.c.name == name)).first()
    if r is None:
        return None
    return WebLoginRow(r.name, r.password_hash, tuple(c for c in r.cohorts.split(",") if c))


def web_secret(conn: Connection, new: str) -> str:
    """The console's signing key: the one kept, or ``new``, kept from now on."""
    _insert_new(conn, web_secret_t, dict(id=1, secret=new))
    return str(conn.execute(select(web_secret_t.c.secret).where(web_secret_t.c.id == 1)).scalar_one())


# --- the web console's reading ------------------------------------------------------------


def muted_ids(conn: Connection, cohort_id: str) -> set[str]:
    """Members who opted out of @-mentions and nudges (the `mute` command)."""
    q = select(member_t.c.member_id).where(member_t.c.cohort_id == cohort_id, member_t.c.muted.is_(True))
    return set(conn.execute(q).scalars())


def send_queue(
    conn: Connection, cohort_id: str, limit: int = 50
) -> list[tuple[int, str, str, str, datetime]]:
    """Messages waiting, being sent or failed: (id, kind, status, text, not before), oldest first."""
    q = (
        select(out_t.c.id, out_t.c.kind, out_t.c.status, out_t.c.text, out_t.c.not_before)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.status.in_(("pending", "sending", "failed")))
        .order_by(out_t.c.id)
        .limit(limit)
    )
    return [(i, k, s, t, _aware(nb)) for i, k, s, t, nb in conn.execute(q)]


def change_stamp(conn: Connection, cohort_id: str) -> tuple[Any, ...]:
    """Changes when anything the console shows of a cohort does: check-ins, leaves, actions,
    items, sends, members, the pause. One round trip, asked every second by a live page."""

    def count(table: Table) -> Any:
        return select(func.count()).select_from(table).where(table.c.cohort_id == cohort_id).scalar_subquery()

    q = select(
        count(checkin_t),
        count(leave_t),
        count(action_t),
        count(item_t),
        select(func.max(out_t.c.id)).where(out_t.c.cohort_id == cohort_id).scalar_subquery(),
        select(func.count())
        .select_from(out_t)
        .where(out_t.c.cohort_id == cohort_id, out_t.c.status.in_(("sent", "failed")))
        .scalar_subquery(),
        select(func.count())
        .select_from(member_t)
        .where(member_t.c.cohort_id == cohort_id, member_t.c.present.is_(True))
        .scalar_subquery(),
        select(cohort_t.c.paused_at).where(cohort_t.c.id == cohort_id).scalar_subquery(),
    )
    return tuple(conn.execute(q).one())
