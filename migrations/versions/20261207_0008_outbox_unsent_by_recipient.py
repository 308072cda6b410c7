"""A partial index on the outbox's unsent rows by recipient: each delivery asks whether an earlier message to the
same person is still to go (messages must arrive in order).

Without it that question read the whole outbox, sent rows included, so every delivery slowed down as the outbox
grew (a millisecond at a few thousand rows).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbox_unsent_by_recipient",
        "outbox",
        ["channel", "recipient", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_unsent_by_recipient", table_name="outbox")
