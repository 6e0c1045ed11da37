"""Feeds: remote TAXII sources and their cursors

Revision ID: 0002_feeds
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_feeds"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feed_sources",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("partner_slug", sa.String(length=64), nullable=False),
        sa.Column("collection_uuid", sa.String(length=36), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("cursor", sa.String(length=40), nullable=False),
        sa.Column("last_run_us", sa.BigInteger(), nullable=True),
        sa.Column("last_summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("feed_sources")
