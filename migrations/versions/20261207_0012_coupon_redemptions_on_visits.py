"""A coupon is redeemed on a visit: every redemption is a row (who, when, which visit, undone by whom), a coupon
may have several uses (``max_uses``, default one) counted in ``uses``, and its discount is a ``coupon`` line on the
visit's invoice (``invoices.coupon_discount`` totals them).

Coupons redeemed before this release count one use; they were never tied to a visit, so they get no row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("coupons", sa.Column("max_uses", sa.SmallInteger(), server_default="1", nullable=False))
    op.add_column("coupons", sa.Column("uses", sa.SmallInteger(), server_default="0", nullable=False))
    op.execute("UPDATE coupons SET uses = 1 WHERE status = 'redeemed'")
    op.create_check_constraint(
        op.f("ck_coupons_uses_within_max"), "coupons", "max_uses >= 1 AND uses >= 0 AND uses <= max_uses"
    )
    op.add_column(
        "invoices", sa.Column("coupon_discount", sa.Numeric(precision=14, scale=2), server_default="0", nullable=False)
    )
    op.drop_constraint(op.f("ck_invoice_lines_kind_valid"), "invoice_lines", type_="check")
    op.create_check_constraint(
        op.f("ck_invoice_lines_kind_valid"),
        "invoice_lines",
        "kind IN ('examination', 'consumable', 'coupon', 'loyalty')",
    )
    op.create_table(
        "coupon_redemptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("branch_id", sa.Integer(), nullable=True),
        sa.Column("redeemed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("redeemed_by", sa.Integer(), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.Integer(), nullable=True),
        sa.Column("undo_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["branch_id"], ["branches.id"], name=op.f("fk_coupon_redemptions_branch_id_branches"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["coupon_id"], ["coupons.id"], name=op.f("fk_coupon_redemptions_coupon_id_coupons"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_by"], ["staff.id"], name=op.f("fk_coupon_redemptions_redeemed_by_staff"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_coupon_redemptions_session_id_sessions"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["undone_by"], ["staff.id"], name=op.f("fk_coupon_redemptions_undone_by_staff"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coupon_redemptions")),
    )
    op.create_index(op.f("ix_coupon_redemptions_coupon_id"), "coupon_redemptions", ["coupon_id"], unique=False)
    op.create_index(op.f("ix_coupon_redemptions_session_id"), "coupon_redemptions", ["session_id"], unique=False)
    op.create_index(
        "uq_coupon_redemptions_standing_per_visit",
        "coupon_redemptions",
        ["coupon_id", "session_id"],
        unique=True,
        postgresql_where=sa.text("undone_at IS NULL"),
    )


def downgrade() -> None:
    """Drops the redemption rows (the coupons keep their status) and any coupon lines on invoices."""
    op.drop_table("coupon_redemptions")
    op.execute("DELETE FROM invoice_lines WHERE kind = 'coupon'")
    op.drop_constraint(op.f("ck_invoice_lines_kind_valid"), "invoice_lines", type_="check")
    op.create_check_constraint(
        op.f("ck_invoice_lines_kind_valid"), "invoice_lines", "kind IN ('examination', 'consumable', 'loyalty')"
    )
    op.drop_column("invoices", "coupon_discount")
    op.drop_constraint(op.f("ck_coupons_uses_within_max"), "coupons", type_="check")
    op.drop_column("coupons", "uses")
    op.drop_column("coupons", "max_uses")
