"""no index names customer.balance, so a debit's update of its customer is a HOT update on PostgreSQL

A debit changes the customer's balance (and its updated time, which no index names either). While an index named
the balance, PostgreSQL wrote a new entry into every one of the customer's seven indexes on each debit; now the
new row version stays on its page and no index changes. The customer table's sort by balance sorts the creator's
rows instead of walking an index (issue 21). The table keeps a tenth of each page free for those new versions.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 18:15:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_customer_creator_balance", table_name="customer")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer SET (fillfactor = 90)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE customer RESET (fillfactor)")
    op.create_index("ix_customer_creator_balance", "customer", ["creator_id", "balance", "id"], unique=False)
