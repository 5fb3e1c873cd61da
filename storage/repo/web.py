"""The web console's logins, its signing key and the stamp its live pages watch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, func, select, update

from storage.repo._common import _insert_new
from storage.repo.tables import (
    action_t,
    checkin_t,
    cohort_t,
    item_t,
    leave_t,
    member_t,
    out_t,
    web_login_t,
    web_secret_t,
)


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
