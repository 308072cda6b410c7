"""Inbound processing: messages.processed_at (the dialog answered it) and one open conversation per identity.

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("messages", sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_messages_unprocessed",
        "messages",
        ["created_at"],
        unique=False,
        postgresql_where=sa.text("direction = 'in' AND processed_at IS NULL"),
    )
    op.create_index(
        "uq_conversations_open_identity",
        "conversations",
        ["identity_id"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_conversations_open_identity", table_name="conversations", postgresql_where=sa.text("status = 'open'")
    )
    op.drop_index(
        "ix_messages_unprocessed",
        table_name="messages",
        postgresql_where=sa.text("direction = 'in' AND processed_at IS NULL"),
    )
    op.drop_column("messages", "processed_at")
