"""holds keep which lots they took from in their own row; no index names what ending a hold changes

Placing a hold wrote the hold and one `hold_lot` row per lot; now `hold.lots` (JSON, jsonb on PostgreSQL)
holds the same pairs. The hold indexes named `status` (one in its predicate), so ending a hold could not be a
HOT update on PostgreSQL; active holds are now found through their customer, and `hold` keeps free room on
its pages for the ended version of a hold.

Every change here is one SQLite makes in place: rebuilding `hold` (a batch operation) would drop the table that
ledger entries name, which SQLite refuses while foreign keys are on (as they are once rows exist).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 18:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOTS_TYPE = sa.JSON().with_variant(JSONB(), "postgresql")
ACTIVE = sa.text("status = 'active'")

# Each hold's `hold_lot` rows as one JSON array of {"lot_id", "amount"} objects, and back.
TO_JSON = {
    "postgresql": "UPDATE hold SET lots = (SELECT jsonb_agg(jsonb_build_object('lot_id', lot_id, 'amount', amount)"
    " ORDER BY lot_id) FROM hold_lot WHERE hold_lot.hold_id = hold.id)"
    " WHERE EXISTS (SELECT 1 FROM hold_lot WHERE hold_lot.hold_id = hold.id)",
    "sqlite": "UPDATE hold SET lots = (SELECT json_group_array(json_object('lot_id', lot_id, 'amount', amount))"
    " FROM (SELECT lot_id, amount FROM hold_lot WHERE hold_lot.hold_id = hold.id ORDER BY lot_id))"
    " WHERE EXISTS (SELECT 1 FROM hold_lot WHERE hold_lot.hold_id = hold.id)",
}
FROM_JSON = {
    "postgresql": "INSERT INTO hold_lot (hold_id, lot_id, amount) SELECT hold.id, taken.lot_id, taken.amount"
    " FROM hold, jsonb_to_recordset(hold.lots) AS taken(lot_id integer, amount bigint)",
    "sqlite": "INSERT INTO hold_lot (hold_id, lot_id, amount) SELECT hold.id, json_extract(taken.value, '$.lot_id'),"
    " json_extract(taken.value, '$.amount') FROM hold, json_each(hold.lots) AS taken",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("hold", sa.Column("lots", LOTS_TYPE, server_default="[]", nullable=False))
    op.execute(TO_JSON[dialect])
    op.drop_index("ix_hold_active_expiry", table_name="hold", postgresql_where=ACTIVE)
    op.drop_index("ix_hold_customer_status", table_name="hold")
    op.create_index("ix_hold_customer", "hold", ["customer_id", "id"], unique=False)
    op.drop_table("hold_lot")
    if dialect == "postgresql":
        op.execute("ALTER TABLE hold SET (fillfactor = 80)")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("ALTER TABLE hold RESET (fillfactor)")
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
    op.execute(FROM_JSON[dialect])
    op.drop_index("ix_hold_customer", table_name="hold")
    op.create_index("ix_hold_customer_status", "hold", ["customer_id", "status", "id"], unique=False)
    op.create_index(
        "ix_hold_active_expiry", "hold", ["expires_at"], unique=False, postgresql_where=ACTIVE, sqlite_where=ACTIVE
    )
    op.execute("ALTER TABLE hold DROP COLUMN lots")
