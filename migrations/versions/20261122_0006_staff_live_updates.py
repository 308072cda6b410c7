"""Live updates for the staff app: changes that staff watch are announced with NOTIFY on channel frontdesk_changes.

Triggers, not application code, announce them, so every writer (gateway, workers, CLI, a psql session) is covered.
The payload is small JSON: {"table", "op", "id", "branch_id"}; listeners re-read what they show.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: table → the trigger's WHEN condition (None: every insert and update). Outbox rows matter to staff only when they
#: fail; messages only when they arrive or are sent.
WATCHED: dict[str, tuple[str, str | None]] = {
    "leads": ("INSERT OR UPDATE OR DELETE", None),
    "messages": ("INSERT", None),
    "conversations": ("UPDATE", "OLD.bot_paused IS DISTINCT FROM NEW.bot_paused"),
    "sessions": ("INSERT OR UPDATE OR DELETE", None),
    "queue_entries": ("INSERT OR UPDATE OR DELETE", None),
    "blackout_blocks": ("INSERT OR UPDATE OR DELETE", None),
    "schedule_applications": ("INSERT OR UPDATE", None),
    "outbox": ("UPDATE", "OLD.status IS DISTINCT FROM NEW.status AND NEW.status = 'failed'"),
}


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION frontdesk_announce() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
          row jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
        BEGIN
          PERFORM pg_notify('frontdesk_changes', json_build_object(
            'table', TG_TABLE_NAME, 'op', lower(TG_OP), 'id', row->'id', 'branch_id', row->'branch_id')::text);
          RETURN NULL;
        END $$
        """
    )
    for table, (events, when) in WATCHED.items():
        condition = f" WHEN ({when})" if when else ""
        op.execute(
            f"CREATE TRIGGER {table}_announce AFTER {events} ON {table} "
            f"FOR EACH ROW{condition} EXECUTE FUNCTION frontdesk_announce()"
        )


def downgrade() -> None:
    for table in WATCHED:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_announce ON {table}")
    op.execute("DROP FUNCTION IF EXISTS frontdesk_announce()")
