"""Object origins: an id keeps its originator for good; copies by others are quarantined

``object_origins`` records, per object id (compared case-insensitively), the partner that first
published it. Only that partner may publish under the id again, in any collection, even after it
deleted every version (the row is the tombstone). ``quarantined`` marks a version that another
partner posted under an id it does not own: it is that poster's copy, visible to the poster alone.

Revision ID: 0006_origins
Revises: 0005_newer_exists
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_origins"
down_revision = "0005_newer_exists"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "object_origins",
        sa.Column("stix_key", sa.String(100), primary_key=True),
        sa.Column("originator_id", sa.Integer(), sa.ForeignKey("partners.id"), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
    )
    for table in ("object_versions", "archived_versions"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("quarantined", sa.Boolean(), nullable=False, server_default=sa.false()))
    # The first publication of each id (stored or archived) names its originator.
    op.execute(
        "INSERT INTO object_origins (stix_key, originator_id, created_us) "
        "SELECT stix_key, originator_id, date_added FROM ("
        "  SELECT lower(stix_id) AS stix_key, originator_id, date_added, "
        "         row_number() OVER (PARTITION BY lower(stix_id) ORDER BY date_added) AS n "
        "  FROM (SELECT stix_id, originator_id, date_added FROM object_versions "
        "        UNION ALL SELECT stix_id, originator_id, date_added FROM archived_versions) AS every_version"
        ") AS firsts WHERE n = 1"
    )


def downgrade() -> None:
    for table in ("archived_versions", "object_versions"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("quarantined")
    op.drop_table("object_origins")
