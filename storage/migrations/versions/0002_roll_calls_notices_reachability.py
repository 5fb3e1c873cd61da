"""roll calls, notices, reachability and opt-outs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 03:27:30.074753
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notice",
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("track", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("footer_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("cohort_id", "member_id", "track", "day"),
    )
    with op.batch_alter_table("checkin", schema=None) as batch_op:
        batch_op.add_column(sa.Column("named_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_rollcall_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reachable", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("muted", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("reward_grant", schema=None) as batch_op:
        batch_op.add_column(sa.Column("named_at", storage.models.UTCDateTime(timezone=True), nullable=True))
    # What a version-1 bot already acknowledged one by one is not named again in a roll call.
    op.execute("UPDATE checkin SET named_at = at")
    op.execute("UPDATE reward_grant SET named_at = at")


def downgrade() -> None:
    with op.batch_alter_table("reward_grant", schema=None) as batch_op:
        batch_op.drop_column("named_at")
    with op.batch_alter_table("member", schema=None) as batch_op:
        batch_op.drop_column("muted")
        batch_op.drop_column("reachable")
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.drop_column("last_rollcall_at")
    with op.batch_alter_table("checkin", schema=None) as batch_op:
        batch_op.drop_column("named_at")
    op.drop_table("notice")
