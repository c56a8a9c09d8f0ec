"""holds: credits reserved for long work, then captured or released; new ledger kinds

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KINDS = "kind IN ('purchase', 'adjustment', 'debit', 'credit', 'refund', 'expiry')"
NEW_KINDS = "kind IN ('purchase', 'adjustment', 'debit', 'credit', 'refund', 'expiry', 'hold', 'capture', 'release')"


def upgrade() -> None:
    op.create_table(
        "hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("creator_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("captured", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("ended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_hold_amount_positive"),
        sa.CheckConstraint("captured >= 0 AND captured <= amount", name="ck_hold_captured_in_range"),
        sa.CheckConstraint("status IN ('active', 'captured', 'released', 'expired')", name="ck_hold_status"),
        sa.CheckConstraint("(status = 'active') = (ended_at IS NULL)", name="ck_hold_ended"),
        sa.ForeignKeyConstraint(["creator_id"], ["user.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["customer_id"], ["customer.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("hold", schema=None) as batch_op:
        batch_op.create_index("ix_hold_customer_status", ["customer_id", "status", "id"], unique=False)
        batch_op.create_index(
            "ix_hold_active_expiry",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'active'"),
            sqlite_where=sa.text("status = 'active'"),
        )
    op.create_table(
        "hold_lot",
        sa.Column("hold_id", sa.Integer(), nullable=False),
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_hold_lot_amount_positive"),
        sa.ForeignKeyConstraint(["hold_id"], ["hold.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["lot_id"], ["credit_lot.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("hold_id", "lot_id"),
    )
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.create_check_constraint("ck_customer_held_non_negative", "held >= 0")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hold_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_ledger_entry_hold_id_hold", "hold", ["hold_id"], ["id"], ondelete="RESTRICT")
        batch_op.drop_constraint("ck_ledger_kind", type_="check")
        batch_op.create_check_constraint("ck_ledger_kind", NEW_KINDS)
        batch_op.drop_constraint("ck_ledger_delta_non_zero", type_="check")
        batch_op.create_check_constraint("ck_ledger_delta_non_zero", "delta <> 0 OR kind = 'capture'")


def downgrade() -> None:
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("ck_ledger_delta_non_zero", type_="check")
        batch_op.create_check_constraint("ck_ledger_delta_non_zero", "delta <> 0")
        batch_op.drop_constraint("ck_ledger_kind", type_="check")
        batch_op.create_check_constraint("ck_ledger_kind", OLD_KINDS)
        batch_op.drop_constraint("fk_ledger_entry_hold_id_hold", type_="foreignkey")
        batch_op.drop_column("hold_id")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_constraint("ck_customer_held_non_negative", type_="check")
        batch_op.drop_column("held")
    op.drop_table("hold_lot")
    with op.batch_alter_table("hold", schema=None) as batch_op:
        batch_op.drop_index("ix_hold_active_expiry", postgresql_where=sa.text("status = 'active'"))
        batch_op.drop_index("ix_hold_customer_status")
    op.drop_table("hold")
