"""The outbox remembers two things about a row's past: a send whose outcome is unknown, and a give-up that was the
provider's doing.

``uncertain_at``: when a send of this row may have reached the provider without our hearing back (a timeout after
the request left, a worker that died between send and record). Such a row is sent at most once more; if that is
uncertain too, it is given up and shown to staff as "may have been delivered".

``parked_at``: when the row was given up after the provider kept failing (5xx, network) — not the patient's or our
fault. Parked rows are sent again on their own once the channel answers again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("uncertain_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_parked", "outbox", ["channel", "parked_at"], postgresql_where=sa.text("parked_at IS NOT NULL")
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_parked", table_name="outbox")
    op.drop_column("outbox", "parked_at")
    op.drop_column("outbox", "uncertain_at")
