"""The same storage and restart guarantees on PostgreSQL, the production database.

Runs against COHORTBOT_TEST_PG (default: the local server's `test` database). Skipped when
no server answers, except in CI, where .ci/run starts one and a missing server is a failure.
"""

import os
from datetime import UTC, date, datetime

import pytest

from storage import repo
from storage.db import open_db
from tests.harness import Harness, members, scratch_postgres

URL = os.environ.get("COHORTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    return scratch_postgres()  # a scratch database: start clean every test


def test_claims_are_unique_and_times_utc(pg_url):
    db = open_db(pg_url)
    at = datetime(2026, 12, 2, 7, 45, tzinfo=UTC)
    with db.begin() as conn:
        repo.ensure_cohort(conn, "c1", "pb", "room", date(2026, 12, 1), "Asia/Shanghai", at)
        repo.member_joined(conn, "c1", "u01", "小明", None, at)
        assert repo.record_checkin(conn, "c1", "u01", "reading", 2, at)
        assert not repo.record_checkin(conn, "c1", "u01", "reading", 2, at)
        assert repo.grant_reward(conn, "c1", "u01", "pack", at)
        assert not repo.grant_reward(conn, "c1", "u01", "pack", at)
        assert repo.claim_item(conn, "c1", "d1", at, at)
        assert not repo.claim_item(conn, "c1", "d1", at, at)
        totals = repo.checkin_totals(conn, "c1")
    assert totals == [("u01", 1, at)]
    assert totals[0][2].tzinfo is not None
    db.dispose()


async def test_restart_on_postgres_sends_nothing_twice(pg_url):
    people = members("op1:王助教", "u01:小明", "u02:小红")
    h = await Harness.start(people=people, operators=("op1",), db_url=pg_url)
    await h.until("day 2 20:00")
    await h.say("u02", "打卡")
    await h.until("day 2 20:01")
    await h.settle()
    assert [s.kinds for s in h.sent] == [("post",), ("post",), ("rollcall",)]
    await h.stop()

    h2 = await Harness.start(people=people, operators=("op1",), db_url=pg_url, now="day 2 21:31")
    await h2.until("day 2 23:00")
    await h2.settle()
    assert [(h2.local(s), s.mentions) for s in h2.sent] == [("02 21:31:00", ("u01",))]
    await h2.stop()
