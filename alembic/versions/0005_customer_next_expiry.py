"""customer.next_expiry_at: charges skip the due-lot query until the soonest expiry

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 19:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_expiry_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute(
        "UPDATE customer SET next_expiry_at = (SELECT min(expires_at) FROM credit_lot"
        " WHERE credit_lot.customer_id = customer.id AND credit_lot.remaining > 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("next_expiry_at")
