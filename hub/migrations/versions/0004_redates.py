"""Former date_added values of re-dated versions, so the delivery ledger stays exact

Revision ID: 0003_redates
Revises: 0002_feeds, 0002_ops
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_redates"
down_revision = ("0002_feeds", "0002_ops")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "version_redates",
        sa.Column("version_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("date_added", sa.BigInteger(), nullable=False),
        sa.Column("replaced_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("version_pk", "date_added"),
    )


def downgrade() -> None:
    op.drop_table("version_redates")
