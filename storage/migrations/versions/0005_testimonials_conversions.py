"""testimonials (心得 texts, 精选) and conversions (报名)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-23 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0005"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversion",
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("cohort_id", "member_id"),
    )
    op.create_table(
        "testimonial",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cohort_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("member_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("track", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("featured_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("featured_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["cohort_id"], ["cohort.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cohort_id", "member_id", "digest"),
    )
    with op.batch_alter_table("testimonial", schema=None) as batch_op:
        batch_op.create_index("ix_testimonial_at", ["cohort_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("testimonial", schema=None) as batch_op:
        batch_op.drop_index("ix_testimonial_at")
    op.drop_table("testimonial")
    op.drop_table("conversion")
