"""ledger kind `dispute`; purchase.refund_reason for payments refunded automatically; credit_lot.taken_back

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = "'purchase', 'adjustment', 'debit', 'credit', 'refund', 'expiry', 'hold', 'capture', 'release'"


def upgrade() -> None:
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("ck_ledger_kind", type_="check")
        batch_op.create_check_constraint("ck_ledger_kind", f"kind IN ({KINDS}, 'dispute')")
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refund_reason", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    with op.batch_alter_table("credit_lot", schema=None) as batch_op:
        batch_op.add_column(sa.Column("taken_back", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True))
        batch_op.create_check_constraint("ck_lot_taken_back", "taken_back IN ('refund', 'dispute')")
    # Lots of purchases refunded before this revision: credits a hold gives back to them are taken back too.
    op.execute(
        "UPDATE credit_lot SET taken_back = 'refund' WHERE purchase_id IN "
        "(SELECT id FROM purchase WHERE status = 'refunded')"
    )


def downgrade() -> None:
    """Back to 0008's kinds. Dispute entries are part of customers' balances, so they are never dropped:
    with any recorded, the downgrade stops and changes nothing."""
    disputes = op.get_bind().execute(sa.text("SELECT count(*) FROM ledger_entry WHERE kind = 'dispute'")).scalar()
    if disputes:
        raise RuntimeError(f"{disputes} ledger entries are disputes, which revision 0008 cannot store; not downgrading")
    with op.batch_alter_table("credit_lot", schema=None) as batch_op:
        batch_op.drop_constraint("ck_lot_taken_back", type_="check")
        batch_op.drop_column("taken_back")
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.drop_column("refund_reason")
    with op.batch_alter_table("ledger_entry", schema=None) as batch_op:
        batch_op.drop_constraint("ck_ledger_kind", type_="check")
        batch_op.create_check_constraint("ck_ledger_kind", f"kind IN ({KINDS})")
