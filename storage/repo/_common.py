"""Helpers the other modules of storage.repo share."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, Executable, Table, and_, func
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import UTCDateTime
from storage.repo.tables import member_t


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


def _aware(value: Any) -> Any:
    # min()/max() over a typed column come back untyped from SQLite: restore the UTC type.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return UTCDateTime().process_result_value(value, None)  # type: ignore[return-value]


def _with_member(table: Table) -> Any:
    """``table`` joined to the member it is about (kept when the member row is missing)."""
    on = and_(member_t.c.cohort_id == table.c.cohort_id, member_t.c.member_id == table.c.member_id)
    return table.outerjoin(member_t, on)


def _shown(table: Table) -> Any:
    """How the member of a ``_with_member`` row is shown: group alias, name, else the id."""
    return func.coalesce(member_t.c.alias, member_t.c.name, table.c.member_id)
