"""Security keys and passkeys (WebAuthn) as a second factor of panel accounts, and their challenges

Revision ID: 0025_webauthn
Revises: 0024_feedback
"""

import sqlalchemy as sa
from alembic import op

revision = "0025_webauthn"
down_revision = "0024_feedback"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_webauthn_credentials",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("last_used_us", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_admin_webauthn_credentials_user_id", "admin_webauthn_credentials", ["user_id"])
    op.create_table(
        "admin_webauthn_challenges",
        sa.Column("challenge_hash", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("admin_users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_admin_webauthn_challenges_user_id", "admin_webauthn_challenges", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_admin_webauthn_challenges_user_id", table_name="admin_webauthn_challenges")
    op.drop_table("admin_webauthn_challenges")
    op.drop_index("ix_admin_webauthn_credentials_user_id", table_name="admin_webauthn_credentials")
    op.drop_table("admin_webauthn_credentials")
