"""Database engine from a URL: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from bot.i18n import _
from storage import migrate, models  # noqa: F401  (models registers the tables)

EXAMPLES = (
    "e.g. sqlite:///cohortbot.db (a file next to the config) or postgresql+psycopg://user@host:5432/dbname"
)
# Drivers someone might name, and the package that brings each.
_PACKAGES = {
    "MySQLdb": "mysqlclient",
    "pymysql": "PyMySQL",
    "psycopg2": "psycopg2-binary",
    "pg8000": "pg8000",
}


class BadDatabaseURL(ValueError):
    """A database URL that cannot work, said in plain words; never holds the password."""


def safe_url(url: str | URL) -> str:
    """The URL as it may be shown or logged: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError, TypeError):
        return re.sub(r"(://[^/@]*?:)[^/@]*@", r"\1***@", str(url))


def url_password(url: str) -> str | None:
    try:
        return make_url(url).password
    except (ArgumentError, ValueError, TypeError):
        m = re.search(r"://[^/@]*?:([^/@]*)@", url)
        return m[1] if m else None


def scrub(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error) without the URL's password in it."""
    password = url_password(url)
    return text.replace(password, "***") if password else text


def check_url(url: str) -> None:
    """What can be checked without touching the database: the URL's form, its driver
    importable, a port in range, an SQLite file's folder there and writable. Raises
    BadDatabaseURL with what to write instead."""
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        raise BadDatabaseURL(
            _("{url!r} is not a database URL; write one like {examples}").format(
                url=safe_url(url), examples=EXAMPLES
            )
        ) from None
    try:
        dialect = u.get_dialect()
    except NoSuchModuleError:
        raise BadDatabaseURL(
            _("{driver!r} is an unknown kind of database; write one like {examples}").format(
                driver=u.drivername, examples=EXAMPLES
            )
        ) from None
    if getattr(dialect, "is_async", False):
        raise BadDatabaseURL(
            _(
                "{driver} is a driver for asynchronous programs, which cohortbot is not; "
                "for PostgreSQL write postgresql+psycopg://user@host:5432/dbname"
            ).format(driver=u.drivername)
        )
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        package = _PACKAGES.get(exc.name or "", exc.name)
        raise BadDatabaseURL(
            _(
                "the Python driver for {driver} ({module}) is not installed; use "
                "postgresql+psycopg:// or sqlite:/// (their drivers come with cohortbot), or "
                "install it: pip install {package}"
            ).format(driver=u.drivername, module=exc.name, package=package)
        ) from None
    if u.port is not None and not 1 <= u.port <= 65535:
        raise BadDatabaseURL(
            _("port {port} is not a port number (1 to 65535); PostgreSQL's is usually 5432").format(
                port=u.port
            )
        )
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        _check_sqlite_file(Path(u.database))


def _check_sqlite_file(path: Path) -> None:
    folder = path.parent
    if not folder.is_dir():
        raise BadDatabaseURL(
            _(
                "the folder {folder} for the SQLite file does not exist; create it (mkdir -p {folder}) "
                "or fix the path"
            ).format(folder=folder)
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadDatabaseURL(
            _(
                "cohortbot cannot write in the folder {folder} (SQLite needs to put files next to "
                "the database); choose a folder this user may write to"
            ).format(folder=folder)
        )
    if path.is_dir():
        raise BadDatabaseURL(
            _("{path} is a folder, not a file; name a file, e.g. {example}").format(
                path=path, example=path / "cohortbot.db"
            )
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise BadDatabaseURL(
            _("cohortbot may not read and write {path}; fix its permissions").format(path=path)
        )


def explain_failure(url: str, exc: BaseException) -> str:
    """One line for a database that could not be opened at start-up: where, why, what to try;
    never the password."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    # psycopg: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    first = lines[0].rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip() if lines else ""
    detail = scrub(first or type(cause).__name__, url)
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        return f"cannot open the database {safe_url(url)}: {detail}"
    if u.get_backend_name() == "postgresql":
        host, port = u.host or "localhost", u.port or 5432
        name, user = u.database or u.username or "postgres", u.username or os.environ.get("USER", "")
        where = f"PostgreSQL at {host}:{port}"
        low = detail.lower()
        if "database" in low and "does not exist" in low:
            create = f"createdb -h {host} -p {port} {name}"
            return f"{where} has no database {name!r}; create it ({create}) or fix the name"
        if "role" in low and "does not exist" in low:
            create = f"createuser -h {host} -p {port} {user}"
            return f"{where} has no user {user!r}; create it ({create}) or fix the user"
        if "password" in low or "authentication" in low:
            return f"{where} refused user {user!r} ({detail}); check the user name and password"
        return (
            f"cannot connect to {where} (database {name!r}): {detail}; is PostgreSQL running there? "
            "Start it (e.g. sudo systemctl start postgresql), or fix the host and port"
        )
    if u.get_backend_name() == "sqlite":
        return (
            f"cannot open the SQLite database {u.database}: {detail}; check that the file is a "
            "cohortbot database (or move it away to start afresh) and that its folder is writable"
        )
    return f"cannot open the database {safe_url(u)}: {detail}"


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
                raise AlreadyRunning(f"another cohortbot is running on {safe_url(url)}")
            try:
                yield
            finally:
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
        return
    yield


_LOCK_KEY = 0x636F686F7274  # "cohort"
