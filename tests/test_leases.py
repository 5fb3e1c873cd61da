"""Many accounts, one PostgreSQL: one `cohortbot run` per WeChat account, each holding a lease
on its own cohorts (storage/db.py), each sending only its own cohorts' messages.

The end-to-end run (bench/leases.py: three real processes over three mock gateways, one
killed and restarted, one whose lease connection is cut, a second claim refused) and a bot
that loses its lease while its connection was down need PostgreSQL (COHORTBOT_TEST_PG) and
Node; the scoping of every cross-cohort query runs anywhere, on SQLite.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine, text

from bot import i18n
from bot.friends import Friends
from bot.outbox import Outbox, Pacing
from storage import repo
from storage.db import (
    AlreadyRunning,
    PostgresLeases,
    claim_cohorts,
    explain_failure,
    open_db,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import crashlib  # bench/ is not a package: on sys.path above
import leases as leasebench

from tests.gateway.driver import Gateway

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest.fixture
def postgres():
    """Skips without a PostgreSQL server, except in CI or when COHORTBOT_TEST_PG names one on
    purpose (as tests/test_crash.py)."""
    why = crashlib.postgres_available()
    if why is not None:
        if os.environ.get("CI") or os.environ.get("COHORTBOT_TEST_PG"):
            pytest.fail(f"PostgreSQL at {crashlib.PG_URL} is not reachable: {why}")
        pytest.skip(f"no PostgreSQL at {crashlib.PG_URL}")


@pytest.fixture
def pg_url(postgres):
    """A scratch database of its own on COHORTBOT_TEST_PG's server: advisory locks are per
    database, so other tests' bots never see these leases."""
    with crashlib.scratch_postgres() as url:
        yield url


# --------------------------------------------------------------------------- end to end


@pytest.mark.gateway
@pytest.mark.postgres
def test_three_accounts_on_one_postgres_one_killed_and_restarted(postgres):
    result = leasebench.run(say=lambda _line: None)
    report = leasebench.table(result)
    assert result.ok, report
    # It did what it says: four posts per cohort, the killed one's lease lapsed within a
    # second of its death, the running ones' post in the outage went out within a second.
    assert result.info["posts due per cohort"] == 4, report
    assert result.info["killed process's lease free after (ms)"] < 1000, report
    lateness = str(result.info["running accounts' lateness during the outage (s)"]).split(", ")
    assert len(lateness) == 2 and all(float(x) < 1 for x in lateness), report


@pytest.mark.gateway
@pytest.mark.postgres
def test_a_bot_whose_cohort_was_claimed_while_its_connection_was_down_stops(pg_url, tmp_path):
    """Its lease connection drops (a database restart) and, before it claims its cohort again,
    another process does: it stops sending at once, and exits 2 naming the new holder."""
    now = datetime.now(UTC)
    past, _, zone = leasebench.schedule(now)
    gw = Gateway(leasebench.world("a"))
    gw.start()
    bot: crashlib.BotProcess | None = None
    try:
        (tmp_path / "playbook.yaml").write_text(leasebench.playbook_yaml("a", past, zone), encoding="utf-8")
        start = now.astimezone(zone).date().isoformat()
        (tmp_path / "config.yaml").write_text(
            leasebench.config_yaml(pg_url, gw, "a", start), encoding="utf-8"
        )
        bot = crashlib.BotProcess(tmp_path / "config.yaml", tmp_path)
        bot.spawn()
        bot.wait_ready(60)
        db = open_db(pg_url)
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        thief = PostgresLeases(db, ["py-a"])
        for _ in range(20):  # the bot claims it again within LEASE_CHECK_SECONDS: be quicker
            (backend, _), *_ = leasebench.lease_holders(admin, "py-a")
            with admin.connect() as conn:
                conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": backend})
            gone = time.monotonic() + 2  # the bot may claim it again before we see it free
            while leasebench.lease_holders(admin, "py-a") and time.monotonic() < gone:
                time.sleep(0.001)
            try:
                thief.claim()
                break
            except AlreadyRunning:
                continue
        else:
            pytest.fail("the bot claimed its cohort again every time, 20 times, before the test could")
        assert bot.proc is not None
        code = bot.proc.wait(30)
        said = " ".join(bot.log_text().split())
        assert code == 2, said
        assert (
            "the database connection holding this bot's cohorts dropped, and meanwhile cohort py-a is "
            f"already run by cohortbot on host {socket.gethostname()}, pid {os.getpid()}"
        ) in said
        assert "Traceback" not in said
        thief.release()
        admin.dispose()
        db.dispose()
    finally:
        if bot is not None:
            bot.ensure_dead()
        gw.close()


# --------------------------------------------------------------------------- refusals


@pytest.mark.postgres
def test_a_second_claim_names_the_holder_and_claims_nothing(pg_url):
    db = open_db(pg_url)
    with claim_cohorts(db, ["py-a", "py-b"]) as held:
        assert held.held == {"py-a", "py-b"}
        with pytest.raises(AlreadyRunning) as refused, claim_cohorts(db, ["py-c", "py-b"]):
            pass
        assert str(refused.value) == (
            f"cohort py-b is already run by cohortbot on host {socket.gethostname()}, pid {os.getpid()}; "
            "stop it first or remove the cohort from this config"
        )
        # The refused claim let go of py-c, which it had taken before it met py-b.
        with claim_cohorts(db, ["py-c"]) as other:
            assert other.held == {"py-c"}
            assert held.check() and other.check()
    with claim_cohorts(db, ["py-b"]):  # released when the first one stopped
        pass
    db.dispose()


@pytest.mark.postgres
def test_the_refusal_in_chinese(pg_url):
    i18n.use("zh")
    db = open_db(pg_url)
    with claim_cohorts(db, ["py-a"]), pytest.raises(AlreadyRunning) as refused, claim_cohorts(db, ["py-a"]):
        pass
    assert str(refused.value) == (
        f"训练营 py-a 已经由主机 {socket.gethostname()} 上的 cohortbot（进程号 {os.getpid()}）在运行；"
        "请先停掉它，或把这期训练营从本配置中删掉"
    )
    db.dispose()


@pytest.mark.postgres
def test_a_bot_of_the_version_before_holds_the_whole_database(pg_url):
    # A rolling update: the old bot took one lock for the whole database; the new one must
    # not run beside it (and the old one is refused beside a new one, as before).
    db = open_db(pg_url)
    old = create_engine(pg_url)
    with old.connect() as conn:
        assert conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": 0x636F686F7274}).scalar()
        with (
            pytest.raises(AlreadyRunning, match="older version holds the whole database"),
            claim_cohorts(db, ["py-a"]),
        ):
            pass
        conn.execute(text("select pg_advisory_unlock(:k)"), {"k": 0x636F686F7274})
    with claim_cohorts(db, ["py-a"]), old.connect() as conn:
        assert not conn.execute(text("select pg_try_advisory_lock(:k)"), {"k": 0x636F686F7274}).scalar()
    old.dispose()
    db.dispose()


@pytest.mark.postgres
def test_a_dropped_lease_connection_is_claimed_again(pg_url):
    db = open_db(pg_url)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with claim_cohorts(db, ["py-a"]) as held:
        (backend, name), *_ = leasebench.lease_holders(admin, "py-a")
        assert name.startswith(f"cohortbot pid={os.getpid()} host=")
        with admin.connect() as conn:
            conn.execute(text("select pg_terminate_backend(:pid)"), {"pid": backend})
        assert held.check()  # noticed, and claimed again on a new connection
        assert held.held == {"py-a"}
        assert leasebench.lease_holders(admin, "py-a")[0][0] != backend
    admin.dispose()
    db.dispose()


@pytest.mark.postgres
def test_processes_starting_together_on_a_new_database_create_it_once(pg_url):
    # Three accounts' bots started at the same moment (a machine's boot) on an empty database
    # (or one a new version migrates): one creates the tables, the others wait and find them.
    # Processes, not threads: Alembic's `op` and `context` are one per process.
    opening = "import sys; from storage.db import open_db; open_db(sys.argv[1]).dispose()"
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", opening, pg_url], env=crashlib.bot_env(), stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    said = [p.communicate(timeout=60)[1] for p in starting]
    assert [p.returncode for p in starting] == [0] * 4, said


def test_a_second_process_on_one_sqlite_file_is_refused_in_the_operators_language(tmp_path):
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    i18n.use("zh")
    with claim_cohorts(open_db(url), ["py-a"]) as held:
        assert held.held == {"py-a"} and held.check()
        with pytest.raises(AlreadyRunning) as refused, claim_cohorts(open_db(url), ["py-b"]):
            pass
    assert str(refused.value).startswith(f"已有一个 cohortbot 在使用 {tmp_path / 'bot.db'}；请先停掉它")
    assert "PostgreSQL" in str(refused.value)


def test_start_up_database_errors_in_chinese():
    i18n.use("zh")
    exc = RuntimeError('connection failed: FATAL:  database "cohorts" does not exist')
    assert explain_failure("postgresql+psycopg://bot:s3cret@db.local:5433/cohorts", exc) == (
        "db.local:5433 上的 PostgreSQL上没有数据库「cohorts」；"
        "请创建它（createdb -h db.local -p 5433 cohorts），或改正名字"
    )
    said = explain_failure("postgresql+psycopg://bot:s3cret@db.local/x", RuntimeError("Connection refused"))
    assert said.startswith("连不上db.local:5432 上的 PostgreSQL（数据库「x」）：Connection refused。")
    assert "s3cret" not in said


def test_a_second_process_exits_2_with_one_line(tmp_path):
    """`cohortbot run` refused: exit code 2, one line, no traceback (SQLite file here; the
    PostgreSQL refusal is checked end to end in the three-account run)."""
    (tmp_path / "playbook.yaml").write_text(
        leasebench.playbook_yaml("a", [NOW], leasebench.ZoneInfo("UTC")), encoding="utf-8"
    )
    (tmp_path / "config.yaml").write_text(
        "database: sqlite:///bot.db\nlanguage: en\ntransport: {kind: simulated}\n"
        "cohorts:\n  - {id: py-a, playbook: playbook.yaml, room: A 班, start: 2026-12-02}\n",
        encoding="utf-8",
    )
    with claim_cohorts(open_db(f"sqlite:///{tmp_path / 'bot.db'}"), ["py-a"]):
        done = subprocess.run(
            [sys.executable, "-m", "bot.cli", "run", "--config", str(tmp_path / "config.yaml")],
            capture_output=True,
            text=True,
            timeout=60,
            env=crashlib.bot_env(),
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert errors == [
        f"error another cohortbot is running on {tmp_path / 'bot.db'}; stop it first (an SQLite file "
        "serves one bot; to run several accounts on one database use PostgreSQL)"
    ], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


# --------------------------------------------------------------------------- one database, own rows


class Recording:
    def __init__(self, clock) -> None:
        self.clock = clock
        self.sent: list[tuple[str, str, datetime]] = []

    async def wait_ready(self) -> None:
        pass

    async def send_room(self, room_id, text, mentions=()):
        self.sent.append((room_id, text, self.clock.now()))

    async def send_direct(self, member_id, text):
        self.sent.append((member_id, text, self.clock.now()))


def _two_cohorts(tmp_path):
    db = open_db(f"sqlite:///{tmp_path / 'bot.db'}")
    with db.begin() as conn:
        for c in ("a", "b"):
            repo.ensure_cohort(conn, c, "pb", f"{c}-room", date(2026, 12, 1), "Asia/Shanghai", NOW)
            repo.member_joined(conn, c, "u01", "小明", None, NOW)
    return db


async def test_each_process_sends_and_recovers_only_its_own_cohorts(tmp_path):
    db = _two_cohorts(tmp_path)
    clock = asyncio.get_running_loop()
    now = clock.now()
    with db.begin() as conn:
        mine = repo.enqueue(conn, "a", room_id="a-room", text="A 的公告", kind="post", now=now)
        repo.enqueue(conn, "b", room_id="b-room", text="B 的公告", kind="post", now=now)
        repo.enqueue(conn, "b", member_id="u01", text="B 的私信", kind="reply", now=now)
        # B is sending this one right now; and B's group notice, due long ago, is B's to expire.
        flight = repo.enqueue(conn, "b", room_id="b-room", text="B 发送中", kind="post", now=now)
        repo.claim_sends(conn, [flight])
        old = repo.enqueue(
            conn, "b", room_id="b-room", text="B 的旧通知", kind="ack", now=now - timedelta(hours=1)
        )
        # B's sends of the last minute are B's account's pacing, not A's.
        sent_b = repo.enqueue(conn, "b", room_id="b-room", text="B 刚发的", kind="post", now=now)
        repo.claim_sends(conn, [sent_b])
        repo.mark(conn, [sent_b], "sent", at=now)
    transport = Recording(clock)
    outbox = Outbox(db, transport, clock, Pacing())  # type: ignore[arg-type]
    outbox.cohorts = {"a"}
    outbox.recover(timedelta(minutes=10))
    task = asyncio.create_task(outbox.run())
    await asyncio.sleep(60)
    task.cancel()
    # At once: B's send a moment ago is B's account's pacing, not A's (3 s between chats).
    assert transport.sent == [("a-room", "A 的公告", now)]
    with db.connect() as conn:
        status = dict(conn.execute(text("select id, status from outgoing")).all())
    assert status[mine] == "sent"
    assert status[flight] == "sending" and status[old] == "pending"
    assert [s for s in status.values() if s == "pending"] == ["pending"] * 3  # B's three, untouched
    db.dispose()


def test_a_member_who_added_one_account_is_not_a_friend_of_another(tmp_path):
    """Friendship is per account: a member who writes privately to A's account gets A's held
    reward, not B's (B's account still cannot reach them); B's rows stay as they were."""
    db = _two_cohorts(tmp_path)
    with db.begin() as conn:
        held = {
            c: repo.enqueue(conn, c, member_id="u01", text=f"{c} 的奖励", kind="reward", now=NOW)
            for c in "ab"
        }
        repo.mark(conn, list(held.values()), "unreachable")
        repo.set_reachable(conn, "u01", False)
    runs = {"a-room": SimpleNamespace(id="a")}
    friends = Friends(db, SimpleNamespace(now=lambda: NOW), frozenset(), runs, None, lambda: None)  # type: ignore[arg-type]
    with db.begin() as conn:
        assert friends.heard_from(conn, "u01", NOW) == 1
    with db.connect() as conn:
        assert repo.reachable(conn, "a", "u01") and not repo.reachable(conn, "b", "u01")
        status = dict(conn.execute(text("select id, status from outgoing")).all())
    assert status == {held["a"]: "pending", held["b"]: "unreachable"}
    db.dispose()


def test_a_late_echo_settles_only_this_processs_cut_sends(tmp_path):
    from bot.alerts import OperatorAlerts

    db = _two_cohorts(tmp_path)
    with db.begin() as conn:
        cut = {
            c: repo.enqueue(conn, c, member_id="u01", text="同一句话", kind="reply", now=NOW) for c in "ab"
        }
        repo.mark(conn, list(cut.values()), "unknown")
    alerts = OperatorAlerts(db, SimpleNamespace(now=lambda: NOW), frozenset(), lambda: None)  # type: ignore[arg-type]
    alerts.cohorts = {"b"}
    assert alerts.delivered(None, "u01", "同一句话")
    with db.connect() as conn:
        status = dict(conn.execute(text("select id, status from outgoing")).all())
    assert status == {cut["a"]: "unknown", cut["b"]: "sent"}
    db.dispose()
