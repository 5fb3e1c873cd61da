"""Members' group messages, counted per member and day (the report's "spoke")."""

from __future__ import annotations

from functools import cache

from sqlalchemy import Connection, Executable, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.repo.tables import message_t


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
