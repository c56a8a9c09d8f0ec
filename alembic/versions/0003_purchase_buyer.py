"""purchases name their buyer; the customer is linked when the checkout settles

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 18:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.add_column(sa.Column("buyer_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE purchase SET buyer_id = (SELECT buyer_id FROM customer WHERE customer.id = purchase.customer_id)"
    )
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.alter_column("buyer_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_foreign_key("fk_purchase_buyer_id_user", "user", ["buyer_id"], ["id"], ondelete="RESTRICT")
        batch_op.create_index(batch_op.f("ix_purchase_buyer_id"), ["buyer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("purchase", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_purchase_buyer_id"))
        batch_op.drop_constraint("fk_purchase_buyer_id_user", type_="foreignkey")
        batch_op.alter_column("customer_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("buyer_id")
