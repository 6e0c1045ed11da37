"""Withdrawals and recalls: objects that left a partner's view, and administrators' recalls

Revision ID: 0003_withdrawals
Revises: 0003_retention
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_withdrawals"
down_revision = "0003_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "withdrawals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("object_type", sa.String(length=250), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=False),
        sa.Column("originator_id", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("recall_id", sa.Integer(), nullable=True),
        sa.Column("served_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("position"),
    )
    op.create_index("ix_withdrawals_partner_position", "withdrawals", ["partner_id", "collection_id", "position"])
    op.create_index("ix_withdrawals_stix_id", "withdrawals", ["stix_id"])
    op.create_index("ix_withdrawals_recall_id", "withdrawals", ["recall_id"])
    op.create_table(
        "recalls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(length=300), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_recalls_stix_id", "recalls", ["stix_id"])
    op.create_table(
        "recall_notices",
        sa.Column("recall_id", sa.Integer(), sa.ForeignKey("recalls.id"), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("partner_slug", sa.String(length=64), nullable=False),
        sa.Column("notified_us", sa.BigInteger(), nullable=False),
        sa.Column("served_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("recall_id", "partner_id"),
    )


def downgrade() -> None:
    op.drop_table("recall_notices")
    op.drop_index("ix_recalls_stix_id", table_name="recalls")
    op.drop_table("recalls")
    op.drop_index("ix_withdrawals_recall_id", table_name="withdrawals")
    op.drop_index("ix_withdrawals_stix_id", table_name="withdrawals")
    op.drop_index("ix_withdrawals_partner_position", table_name="withdrawals")
    op.drop_table("withdrawals")
