"""The migrations build exactly the schema the models describe: a model changed without a
migration fails here, on SQLite and on PostgreSQL."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from storage.db import open_db
from tests.test_postgres import pg_url  # noqa: F401  (fixture)


def drift(url: str) -> list:
    engine = open_db(url)  # runs the migrations
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    return diff, tables


def test_sqlite_schema_matches_models(tmp_path):
    diff, tables = drift(f"sqlite:///{tmp_path / 'm.db'}")
    assert diff == []
    assert {
        "cohort",
        "member",
        "checkin",
        "reward_grant",
        "item_run",
        "outgoing",
        "alembic_version",
    } <= tables


def test_migrating_twice_is_harmless(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    open_db(url).dispose()
    diff, _ = drift(url)
    assert diff == []


@pytest.mark.postgres
def test_postgres_schema_matches_models(pg_url):  # noqa: F811
    diff, _ = drift(pg_url)
    assert diff == []
