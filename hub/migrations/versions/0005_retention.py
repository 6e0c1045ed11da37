"""Retention: a per-collection retention period and the archive of superseded versions

Revision ID: 0003_retention
Revises: 0003_redates
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_retention"
down_revision = "0003_redates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer(), nullable=True))
    op.create_table(
        "archived_versions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("pk", sa.BigInteger(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=250), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("version_us", sa.BigInteger(), nullable=False),
        sa.Column("spec_version", sa.String(length=8), nullable=False),
        sa.Column("date_added", sa.BigInteger(), nullable=False),
        sa.Column("originator_id", sa.Integer(), nullable=False),
        sa.Column("tlp", sa.SmallInteger(), nullable=False),
        sa.Column("restriction_set_id", sa.Integer(), nullable=True),
        sa.Column("unknown_markings", sa.Boolean(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("archived_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_archived_object", "archived_versions", ["stix_id", "collection_id", "version_us"])
    op.create_index("ix_archived_versions_archived_us", "archived_versions", ["archived_us"])


def downgrade() -> None:
    op.drop_index("ix_archived_versions_archived_us", table_name="archived_versions")
    op.drop_index("ix_archived_object", table_name="archived_versions")
    op.drop_table("archived_versions")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("retention_days")
