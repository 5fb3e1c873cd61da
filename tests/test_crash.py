"""The crash harness (bench/crash.py), short: the real `cohortbot run` over the mock gateway,
SIGKILLed a few times at seeded moments and restarted on the same database; nothing may be
sent twice, nobody named in a roll call may be missing from the database, no counted
check-in may be lost (named nowhere though marked named, or waiting too long), nothing due
may be lost. Roll calls come a minute apart at most, so this short run does not wait for the
last names at the end (the full run does): those still waiting in the database are counted.

The full run (20 kills, a few minutes) is `.venv/bin/python bench/crash.py`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import crashlib  # bench/ is not a package: on sys.path above

pytestmark = pytest.mark.gateway


def check(result: crashlib.Result, kills: int) -> None:
    report = crashlib.table(result)
    assert result.ok, report
    assert len(result.kills) == kills, report
    # The run did something worth checking: items went out, members were counted and rewarded.
    assert result.info["items due"] >= 5, report
    assert result.info["check-ins in the database"] > 0, report
    assert result.info["check-ins named in a roll call (member, track)"] > 0, report
    assert result.info["  past the grace window (allowed skips)"] == 1, report  # the `old` item


def test_killed_three_times_on_sqlite_nothing_twice_nothing_lost():
    result = crashlib.run(
        kills=3, seed=11, db="sqlite", duration=15, say=lambda _line: None, wait_for_roll_calls=False
    )
    check(result, 3)


@pytest.mark.postgres
def test_killed_twice_on_postgres_nothing_twice_nothing_lost():
    why = crashlib.postgres_available()
    if why is not None:
        # As tests/test_postgres.py: skipped when no server answers, except in CI (or when
        # COHORTBOT_TEST_PG names one on purpose), where a missing server is a failure.
        if os.environ.get("CI") or os.environ.get("COHORTBOT_TEST_PG"):
            pytest.fail(f"PostgreSQL at {crashlib.PG_URL} is not reachable: {why}")
        pytest.skip(f"no PostgreSQL at {crashlib.PG_URL}")
    result = crashlib.run(
        kills=2, seed=12, db="postgres", duration=14, say=lambda _line: None, wait_for_roll_calls=False
    )
    check(result, 2)
