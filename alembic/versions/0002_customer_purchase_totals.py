"""customer purchase totals and search indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 18:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("credits_purchased", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("first_purchase_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_purchase_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_customer_creator_last_purchase", ["creator_id", "last_purchase_at"], unique=False)
        batch_op.create_index(
            "ix_customer_creator_credits_purchased", ["creator_id", "credits_purchased"], unique=False
        )
    if op.get_bind().dialect.name == "postgresql":
        # Substring search on email and name (ILIKE '%...%') over 100,000 customers.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute('CREATE INDEX ix_user_email_trgm ON "user" USING gin (email gin_trgm_ops)')
        op.execute('CREATE INDEX ix_user_name_trgm ON "user" USING gin (lower(name) gin_trgm_ops)')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_user_name_trgm")
        op.execute("DROP INDEX IF EXISTS ix_user_email_trgm")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_creator_credits_purchased")
        batch_op.drop_index("ix_customer_creator_last_purchase")
        batch_op.drop_column("last_purchase_at")
        batch_op.drop_column("first_purchase_at")
        batch_op.drop_column("credits_purchased")
