"""Database engine from a URL: SQLite (WAL) by default, PostgreSQL in production."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool, StaticPool

from bot.i18n import _
from storage import migrate, models  # noqa: F401  (models registers the tables)

log = logging.getLogger(__name__)

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
    never the password. In the operator's language."""
    cause = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    # psycopg: 'connection failed: connection to server at "h", port 1 failed: Connection refused'
    first = lines[0].rsplit("failed: ", 1)[-1].removeprefix("FATAL:").strip() if lines else ""
    detail = scrub(first or type(cause).__name__, url)
    try:
        u = make_url(url)
    except (ArgumentError, ValueError):
        return _("cannot open the database {url}: {detail}").format(url=safe_url(url), detail=detail)
    if u.get_backend_name() == "postgresql":
        host, port = u.host or "localhost", u.port or 5432
        name, user = u.database or u.username or "postgres", u.username or os.environ.get("USER", "")
        where = _("PostgreSQL at {host}:{port}").format(host=host, port=port)
        low = detail.lower()
        if "database" in low and "does not exist" in low:
            return _("{where} has no database {name!r}; create it ({command}) or fix the name").format(
                where=where, name=name, command=f"createdb -h {host} -p {port} {name}"
            )
        if "role" in low and "does not exist" in low:
            return _("{where} has no user {user!r}; create it ({command}) or fix the user").format(
                where=where, user=user, command=f"createuser -h {host} -p {port} {user}"
            )
        if "password" in low or "authentication" in low:
            return _("{where} refused user {user!r} ({detail}); check the user name and password").format(
                where=where, user=user, detail=detail
            )
        return _(
            "cannot connect to {where} (database {name!r}): {detail}; is PostgreSQL running there? "
            "Start it (e.g. sudo systemctl start postgresql), or fix the host and port"
        ).format(where=where, name=name, detail=detail)
    if u.get_backend_name() == "sqlite":
        return _(
            "cannot open the SQLite database {path}: {detail}; check that the file is a "
            "cohortbot database (or move it away to start afresh) and that its folder is writable"
        ).format(path=u.database, detail=detail)
    return _("cannot open the database {url}: {detail}").format(url=safe_url(u), detail=detail)


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

        migrate.upgrade(engine)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        with engine.connect() as conn:
            # Bots of several accounts may start together (claim_cohorts): one migrates, the
            # others wait here, then find nothing left to do. A session lock, let go below, or
            # with the connection if this process dies meanwhile.
            conn.execute(text("select pg_advisory_lock(:key)"), {"key": _MIGRATING_KEY})
            try:
                migrate.upgrade(engine)
            finally:
                conn.execute(text("select pg_advisory_unlock(:key)"), {"key": _MIGRATING_KEY})
    return engine


class AlreadyRunning(RuntimeError):
    """Another process holds what this one would run; said in the operator's language."""


class LeaseLost(RuntimeError):
    """The database connection holding the leases dropped, and a cohort could not be claimed
    again: another process runs it now."""


def lease_key(cohort_id: str) -> int:
    """The advisory lock key of a cohort: a stable 64-bit hash of its id (the same in every
    process and Python version; PostgreSQL's own hashtext may change between versions)."""
    digest = hashlib.blake2b(cohort_id.encode(), digest_size=8, person=b"cohortbot-lease").digest()
    return int.from_bytes(digest, "big", signed=True)


class Leases:
    """The cohorts this process runs. ``held`` is what it may send for now (the outbox and
    alerts read it, live). Here, where no other process can share the database (SQLite, a
    file held with flock, or in memory): every cohort, always."""

    def __init__(self, cohort_ids: Sequence[str]) -> None:
        self.cohorts = tuple(cohort_ids)
        self.held: set[str] = set(self.cohorts)

    def check(self) -> bool:
        """True while every cohort is held; see PostgresLeases."""
        return True

    def release(self) -> None:
        self.held.clear()


# Who holds a lease, as PostgreSQL shows it (pg_stat_activity.application_name, at most 63
# bytes: the pid goes first so that a long host name cannot cut it off).
_APP_NAME = "cohortbot pid={pid} host={host}"
_HOLDER = re.compile(r"^cohortbot pid=(\d+) host=(\S*)")
# Settings of the lease connection. The server's keepalives make a holder whose machine died
# (no FIN ever comes) lose its leases within about a minute rather than two hours; the
# client's, with tcp_user_timeout, make a lost server show up in a check, not hang it.
_SERVER_KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}
_CLIENT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
}
_HOLDER_SQL = text(
    """
    select a.application_name, a.client_addr::text, a.pid
    from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())
      and l.classid::bigint = :high and l.objid::bigint = :low
    limit 1
    """
)
_MINE_SQL = text(
    "select count(*) from pg_locks where pid = pg_backend_pid() and locktype = 'advisory' and granted"
)


class PostgresLeases(Leases):
    """One session advisory lock per cohort, held on a connection of its own for the life of
    the process: processes share the database as long as no cohort is claimed twice. A
    process that dies loses its connection, and with it its leases, at once: no heartbeat, no
    lease row to expire. The connection's application_name names the holder (host, pid) for
    the refusal a second claim gets."""

    def __init__(self, engine: Engine, cohort_ids: Sequence[str]) -> None:
        super().__init__(cohort_ids)
        self.held.clear()
        self.name = _APP_NAME.format(pid=os.getpid(), host=socket.gethostname())
        # Autocommit: the connection never sits idle in a transaction (no snapshot held
        # against vacuum for days, no idle-in-transaction timeout to kill it).
        libpq = engine.url.get_driver_name() in ("psycopg", "psycopg2")
        self._engine = create_engine(
            engine.url,
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args=_CLIENT_ARGS if libpq else {},
        )
        self._url = engine.url.render_as_string(hide_password=False)  # to scrub errors with
        self._conn: Connection | None = None

    def claim(self) -> None:
        """Claim every cohort, or none: raises AlreadyRunning naming the holder of the first
        one that is taken."""
        conn = self._engine.connect()
        try:
            conn.execute(text("select set_config('application_name', :name, false)"), {"name": self.name})
            for setting, value in _SERVER_KEEPALIVES.items():
                conn.execute(text(f"set {setting} = {int(value)}"))
            # Shared with every bot of this version; exclusive for a bot of the version before,
            # which held the whole database: the two never run side by side.
            shared = text("select pg_try_advisory_lock_shared(:key)")
            if not conn.execute(shared, {"key": _LOCK_KEY}).scalar():
                raise AlreadyRunning(
                    _("a cohortbot of an older version holds the whole database {url}; stop it first").format(
                        url=safe_url(self._engine.url)
                    )
                )
            for cohort_id in self.cohorts:
                key = lease_key(cohort_id)
                if not conn.execute(text("select pg_try_advisory_lock(:key)"), {"key": key}).scalar():
                    raise AlreadyRunning(
                        _(
                            "cohort {cohort} is already run by {holder}; stop it first or remove "
                            "the cohort from this config"
                        ).format(cohort=cohort_id, holder=_holder(conn, key))
                    )
        except BaseException:
            conn.close()  # and with it whatever this attempt took
            raise
        self._conn = conn
        self.held.update(self.cohorts)

    def check(self) -> bool:
        """Whether the leases are still held; called every few seconds while the bot runs.
        After the lease connection dropped (the database restarted, the network broke) the
        cohorts are not sent for (``held`` is emptied) until they are claimed again on a new
        connection: False while the database cannot be reached, True once they are back;
        LeaseLost if another process claimed one in the meantime."""
        if self._conn is not None:
            try:
                # One lock per cohort, and the shared one on the whole database.
                if self._conn.execute(_MINE_SQL).scalar_one() >= len(self.cohorts) + 1:
                    return True
                log.warning("the database no longer shows this bot's cohort leases; claiming them again")
            except (OSError, SQLAlchemyError) as exc:
                why = self._why(exc)
                log.warning("the connection holding the cohort leases dropped (%s); claiming them again", why)
            self.held.clear()
            self._close()
        try:
            self.claim()
        except AlreadyRunning as exc:
            raise LeaseLost(
                _("the database connection holding this bot's cohorts dropped, and meanwhile {why}").format(
                    why=exc
                )
            ) from None
        except (OSError, SQLAlchemyError) as exc:
            log.warning("cannot claim the cohorts again yet: %s", self._why(exc))
            return False
        log.warning("cohort leases claimed again: %s", ", ".join(self.cohorts))
        return True

    def _why(self, exc: BaseException) -> str:
        cause = getattr(exc, "orig", None) or exc
        return scrub((str(cause).strip().splitlines() or [type(cause).__name__])[0], self._url)

    def release(self) -> None:
        super().release()
        self._close()
        self._engine.dispose()

    def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, SQLAlchemyError):
                self._conn.close()
            self._conn = None


def _holder(conn: Connection, key: int) -> str:
    """Who holds an advisory lock, as an operator would name it."""
    row = conn.execute(_HOLDER_SQL, {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).first()
    if row is None:
        return _("another process (it has just let go: try again)")
    app, client, backend = row
    found = _HOLDER.match(app or "")
    if found:
        return _("cohortbot on host {host}, pid {pid}").format(host=found[2], pid=found[1])
    return _("a connection from {client} (PostgreSQL server process {backend})").format(
        client=client or "localhost", backend=backend
    )


@contextmanager
def claim_cohorts(engine: Engine, cohort_ids: Sequence[str]) -> Iterator[Leases]:
    """Hold the cohorts for this process, for as long as the block runs. On PostgreSQL each
    cohort has a lease of its own: one process per WeChat account, all on one database, each
    running (and sending for) its own cohorts. An SQLite file stays one process per file.
    Raises AlreadyRunning, in the operator's language, naming who holds what."""
    url = engine.url
    if url.get_backend_name() == "postgresql":
        leases = PostgresLeases(engine, cohort_ids)
        try:
            leases.claim()
            yield leases
        finally:
            leases.release()
        return
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise AlreadyRunning(
                    _(
                        "another cohortbot is running on {path}; stop it first (an SQLite file "
                        "serves one bot; to run several accounts on one database use PostgreSQL)"
                    ).format(path=url.database)
                ) from None
            yield Leases(cohort_ids)
        return
    yield Leases(cohort_ids)


_LOCK_KEY = 0x636F686F7274  # "cohort": the whole database, as versions before the leases took it
_MIGRATING_KEY = 0x636F686F72746D  # "cohortm": held while one process migrates the schema
