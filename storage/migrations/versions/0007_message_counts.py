"""report: group messages per member and cohort day (the report's "spoke"); the cohort's
days and day_starts, for reports without the playbook

Revision ID: 0007
Revises: 0003
Create Date: 2026-11-23 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.add_column(sa.Column("days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("day_starts", sa.Time(), nullable=True))
    op.create_table(
        "message_count",
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("cohort_id", "member_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("message_count")
    with op.batch_alter_table("cohort", schema=None) as batch_op:
        batch_op.drop_column("day_starts")
        batch_op.drop_column("days")
