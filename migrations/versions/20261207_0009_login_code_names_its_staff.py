"""A login code names the staff record it signs in (never a name to look up), and signing out is announced.

``login_codes.staff_id`` becomes required. Used codes get the member their sign-in audit row names; codes that never
named anyone (unused, at most ten minutes old) are dropped: they would have signed in whoever had that name.

Revoking a session (or a member leaving, changing role or branch) is announced on ``frontdesk_changes`` by the same
trigger function as migration 0006, so an open live-update stream of that session ends at once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: trigger name → (table, events, WHEN condition or None)
TRIGGERS: dict[str, tuple[str, str, str | None]] = {
    "staff_sessions_revoked_announce": (
        "staff_sessions",
        "UPDATE",
        "OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL",
    ),
    "staff_sessions_deleted_announce": ("staff_sessions", "DELETE", None),
    "staff_changed_announce": (
        "staff",
        "UPDATE",
        "(OLD.active, OLD.role, OLD.branch_id, OLD.doctor_id) IS DISTINCT FROM "
        "(NEW.active, NEW.role, NEW.branch_id, NEW.doctor_id)",
    ),
}


def upgrade() -> None:
    op.execute(
        """
        UPDATE login_codes AS c SET staff_id = a.entity_id
        FROM audit_log AS a
        WHERE c.staff_id IS NULL AND a.action = 'login' AND a.entity = 'staff'
          AND a.data ? 'login_code_id' AND (a.data ->> 'login_code_id')::bigint = c.id
          AND EXISTS (SELECT 1 FROM staff AS s WHERE s.id = a.entity_id)
        """
    )
    op.execute("DELETE FROM login_codes WHERE staff_id IS NULL")
    op.alter_column("login_codes", "staff_id", existing_type=sa.Integer(), nullable=False)
    for name, (table, events, when) in TRIGGERS.items():
        condition = f" WHEN ({when})" if when else ""
        op.execute(
            f"CREATE TRIGGER {name} AFTER {events} ON {table} "
            f"FOR EACH ROW{condition} EXECUTE FUNCTION frontdesk_announce()"
        )


def downgrade() -> None:
    for name, (table, _events, _when) in TRIGGERS.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.alter_column("login_codes", "staff_id", existing_type=sa.Integer(), nullable=True)
