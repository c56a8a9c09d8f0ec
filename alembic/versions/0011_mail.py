"""mail: verified emails, single-use account links (password reset, email verification), mail preferences

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_verified_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("sale_mail", sa.Boolean(), server_default=sa.text("true"), nullable=False))
        batch_op.add_column(
            sa.Column("low_balance_mail", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
    op.create_table(
        "account_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("password_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("superseded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.CheckConstraint("purpose IN ('password_reset', 'email_verification')", name="ck_account_token_purpose"),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index(
        "ix_account_token_user_purpose", "account_token", ["user_id", "purpose", "created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_account_token_user_purpose", table_name="account_token")
    op.drop_table("account_token")
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("low_balance_mail")
        batch_op.drop_column("sale_mail")
        batch_op.drop_column("email_verified_at")
