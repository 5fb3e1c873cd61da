"""operator control: pause, make-ups, leave, audit log

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 07:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_at", storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("paused_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    with op.batch_alter_table("checkin", schema=None) as batch_op:
        batch_op.add_column(sa.Column("makeup_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_table(
        "leave",
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("cohort_id", "member_id", "day"),
    )
    op.create_table(
        "operator_action",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("operator_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("detail", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("operator_action")
    op.drop_table("leave")
    with op.batch_alter_table("checkin", schema=None) as batch_op:
        batch_op.drop_column("makeup_by")
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.drop_column("paused_by")
        batch_op.drop_column("paused_at")
