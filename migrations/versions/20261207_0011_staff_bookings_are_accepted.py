"""Visits the front desk booked itself are accepted by booking them (one rule since this release): the waiting
ones booked by staff before it are marked accepted, so none of them waits for a second "Accept".

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE sessions SET accepted = true WHERE status = 'waiting' AND NOT accepted AND created_by IS NOT NULL"
    )


def downgrade() -> None:
    """Nothing to undo: which of them were accepted by this migration is not recorded, and accepted is accepted."""
