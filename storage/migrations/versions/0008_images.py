"""pictures in the outbox (the report's PNG sent in chat)

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-23 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outgoing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outgoing", schema=None) as batch_op:
        batch_op.drop_column("image")
