"""customer table sort indexes end with the id, dates nulls first

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 18:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_creator_balance")
        batch_op.drop_index("ix_customer_creator_credits_purchased")
        batch_op.drop_index("ix_customer_creator_last_purchase")
        batch_op.create_index("ix_customer_creator_balance", ["creator_id", "balance", "id"])
        batch_op.create_index("ix_customer_creator_credits_purchased", ["creator_id", "credits_purchased", "id"])
        batch_op.create_index(
            "ix_customer_creator_last_purchase",
            ["creator_id", "last_purchase_at", "id"],
            postgresql_ops={"last_purchase_at": "NULLS FIRST"},
        )
        batch_op.create_index(
            "ix_customer_creator_first_purchase",
            ["creator_id", "first_purchase_at", "id"],
            postgresql_ops={"first_purchase_at": "NULLS FIRST"},
        )


def downgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_creator_first_purchase")
        batch_op.drop_index("ix_customer_creator_last_purchase")
        batch_op.drop_index("ix_customer_creator_credits_purchased")
        batch_op.drop_index("ix_customer_creator_balance")
        batch_op.create_index("ix_customer_creator_balance", ["creator_id", "balance"])
        batch_op.create_index("ix_customer_creator_credits_purchased", ["creator_id", "credits_purchased"])
        batch_op.create_index("ix_customer_creator_last_purchase", ["creator_id", "last_purchase_at"])
