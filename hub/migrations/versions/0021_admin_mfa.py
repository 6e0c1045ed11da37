"""A second factor for panel accounts: TOTP authenticators and one-time recovery codes

Revision ID: 0021_admin_mfa
Revises: 0020_blocklist_prefixes
"""

import sqlalchemy as sa
from alembic import op

revision = "0021_admin_mfa"
down_revision = "0020_blocklist_prefixes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_totp",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed_secret", sa.String(300), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("enrolled_us", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "admin_recovery_codes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("used_us", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_admin_recovery_codes_user_id", "admin_recovery_codes", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_admin_recovery_codes_user_id", table_name="admin_recovery_codes")
    op.drop_table("admin_recovery_codes")
    op.drop_table("admin_totp")
