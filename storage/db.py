"""Database engine from a URL: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.pool import StaticPool

from storage import migrate, models  # noqa: F401  (models registers the tables)


def open_db(url: str) -> Engine:
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            # One shared connection, or each checkout would see its own empty database.
            poolclass=StaticPool if memory else None,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: a commit survives a crash of the bot; only a power cut can
                # lose the last transactions, and never corrupts the file.
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()
    else:
        engine = create_engine(url, pool_pre_ping=True)
    migrate.upgrade(engine)
    return engine


class AlreadyRunning(RuntimeError):
    pass


@contextmanager
def single_instance(engine: Engine) -> Iterator[None]:
    """Hold the database for this process: two bots on one database would each send what
    the other sends (a rolling update that starts the new bot before the old one stops)."""
    url = engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        lock_path = f"{url.database}.lock"
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunning(f"another cohortbot is running on {url.database}") from None
            yield
        return
    if url.get_backend_name() == "postgresql":
        with engine.connect() as conn:
            if not conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}).scalar():
                raise AlreadyRunning(f"another cohortbot is running on {url.render_as_string()}")
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
        return
    yield


_LOCK_KEY = 0x636F686F7274  # "cohort"
