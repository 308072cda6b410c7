"""An index on leads.conversation_id: each inbound message of a known chat looks up its conversation's open lead.

Without it that lookup reads every open lead (the status index), so ingest slowed down as the inbox grew.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_leads_conversation_id", "leads", ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leads_conversation_id", table_name="leads")
