"""A database opened by a reader in another process (``cohortbot export``), while the bot may
be running on it: no migration, no write, no file created. It must be at the schema
revision this code knows; an older or newer one is refused with what to do, since the
tables it would read are not the ones it expects.

A reader may be let write named tables (``cohortbot conversions import`` writes
``conversion``): still no migration, and a statement that would change any other table is
refused before it reaches the database. Its transactions take SQLite's write lock when they
begin (BEGIN IMMEDIATE: a read-then-write transaction cannot be undercut by the bot's commit
in between, and waits for the bot's own writes instead of failing)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import Select

from bot.i18n import _
from storage import migrate
from storage.db import explain_failure, safe_url


class CannotRead(Exception):
    """A database that cannot be read, said in one line with what to do; never the password."""


def open_readonly(url: str, writes: Collection[str] = ()) -> Engine:
    """An engine that reads ``url`` and cannot write it (but for the tables named in
    ``writes``), once its schema revision is this code's. Raises CannotRead."""
    engine = _engine(url, frozenset(writes))
    try:
        with engine.connect() as conn:
            check_revision(conn, location(url))
    except CannotRead:
        engine.dispose()
        raise
    except SQLAlchemyError as exc:
        engine.dispose()
        raise CannotRead(_explain(url, exc)) from None
    return engine


def location(url: str) -> str:
    """The database as messages name it: an SQLite file's path, else the URL without password."""
    u = make_url(url)
    return str(u.database) if u.get_backend_name() == "sqlite" else safe_url(u)


def _engine(url: str, writes: frozenset[str]) -> Engine:
    try:
        u = make_url(url)
    except ArgumentError:
        raise CannotRead(
            _("{url!r} is neither a database URL nor an SQLite file").format(url=safe_url(url))
        ) from None
    if u.get_backend_name() == "sqlite":
        engine = _sqlite(u.database, writes)
    else:
        try:
            # Read-only and one snapshot: what the bot commits meanwhile is not half in the
            # export. A writer reads committed rows instead: in a snapshot, an insert that
            # meets the bot's newer row fails rather than doing nothing.
            engine = create_engine(
                u,
                pool_pre_ping=True,
                isolation_level="READ COMMITTED" if writes else "REPEATABLE READ",
                execution_options={"postgresql_readonly": not writes},
            )
        except (NoSuchModuleError, ImportError) as exc:
            raise CannotRead(_explain(url, exc)) from None
    if writes:
        _only_writing(engine, writes)
    return engine


def _only_writing(engine: Engine, tables: frozenset[str]) -> None:
    """Refuse, before the database sees it, any statement but a read or a change to one of
    ``tables`` (no schema change, no write elsewhere)."""

    @event.listens_for(engine, "before_execute")
    def _guard(conn: Connection, statement: Any, *args: Any) -> None:
        if isinstance(statement, Select | TextClause):
            return  # reads (the revision check is the one text statement)
        table = getattr(statement, "table", None)
        if isinstance(statement, UpdateBase) and getattr(table, "name", None) in tables:
            return
        raise PermissionError(f"this reader may write only {', '.join(sorted(tables))}")


def _sqlite(database: str | None, writes: frozenset[str] = frozenset()) -> Engine:
    if database in (None, "", ":memory:"):
        raise CannotRead(_("an in-memory database holds nothing once its bot stops; name the file"))
    path = Path(str(database))
    if path.is_dir():
        raise CannotRead(_("{path} is a folder, not a database file").format(path=path))
    if not path.is_file():
        # sqlite3 would create an empty database there and report it has no tables.
        raise CannotRead(
            _("there is no database file {path}; check the path (the config's `database:`)").format(path=path)
        )
    if not os.access(path, os.R_OK):
        raise CannotRead(_("cohortbot may not read {path}; fix its permissions").format(path=path))
    if writes and not os.access(path, os.W_OK):
        raise CannotRead(_("cohortbot may not write {path}; fix its permissions").format(path=path))
    # mode=rw (never rwc: a file is not created) with query_only, not mode=ro: a read-only
    # connection to a WAL database leaves -wal and -shm files behind, and those, owned by
    # whoever ran the export, can lock the bot out. mode=ro only when the file is read-only.
    mode = "rw" if os.access(path, os.W_OK) else "ro"
    uri = f"file:{quote(str(path.resolve()))}?mode={mode}"

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        conn.execute(f"PRAGMA query_only={'OFF' if writes else 'ON'}")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    engine = create_engine(f"sqlite:///{path}", creator=connect)

    @event.listens_for(engine, "begin")
    def _snapshot(conn: Connection) -> None:
        # pysqlite begins no transaction for reads; one BEGIN makes every query of an
        # export see the same moment, whatever the bot commits meanwhile.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def check_revision(conn: Connection, where: str) -> None:
    """The database's Alembic revision is this code's head, or CannotRead says what to do."""
    if not inspect(conn).has_table("alembic_version"):
        raise CannotRead(
            _("{where} is not a cohortbot database (it has no alembic_version table)").format(where=where)
        )
    found = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    script = ScriptDirectory.from_config(migrate.alembic_config())
    heads = set(script.get_heads())
    if found == heads:
        return
    known = {rev.revision for rev in script.walk_revisions()}
    shown, ours = ", ".join(sorted(found)) or "-", ", ".join(sorted(heads))
    if not found:
        raise CannotRead(_("{where} is not a cohortbot database (no schema revision)").format(where=where))
    if found <= known:
        raise CannotRead(
            _(
                "{where} has an older schema (revision {found}; this cohortbot reads {ours}); run "
                "cohortbot run once with it to upgrade it (the bot upgrades its database at start), "
                "then export again"
            ).format(where=where, found=shown, ours=ours)
        )
    raise CannotRead(
        _(
            "{where} was written by a newer cohortbot (schema revision {found}; this one knows up to "
            "{ours}); upgrade cohortbot, then export again"
        ).format(where=where, found=shown, ours=ours)
    )


def _explain(url: str, exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, sqlite3.DatabaseError):
        return _("{where} is not a cohortbot database (SQLite: {detail})").format(
            where=location(url), detail=cause
        )
    return explain_failure(url, exc)
