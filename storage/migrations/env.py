"""Alembic environment: migrations run on the connection storage.db hands over, so the bot
upgrades its own database at start (`alembic upgrade head` from the shell works too, with
-x url=...)."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)

config = context.config
target_metadata = SQLModel.metadata


def run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if url is None:
        raise SystemExit("alembic: give the database with -x url=... or sqlalchemy.url")
    with create_engine(url).connect() as conn:
        run(conn)
        conn.commit()
