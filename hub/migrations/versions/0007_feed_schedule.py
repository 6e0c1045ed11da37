"""Feeds: the lease that lets one process at a time run the scheduled sync of remote sources

Revision ID: 0003_feed_schedule
Revises: 0003_withdrawals
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_feed_schedule"
down_revision = "0003_withdrawals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("next_run_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("feed_leases")
