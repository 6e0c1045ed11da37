"""Versions: newer_exists, set when a later version of the same object is stored in the collection

A page of a partner's view shows each object's latest version the partner may see. A version with no
later one stored is the latest for everyone who sees it, so with this flag the read path searches for
a newer visible version only for the few versions that have one (the search was most of the time of a
page at a million versions).

Revision ID: 0005_newer_exists
Revises: 0004_collection_added
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_newer_exists"
down_revision = "0004_collection_added"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("object_versions") as batch_op:
        batch_op.add_column(sa.Column("newer_exists", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE object_versions SET newer_exists = TRUE WHERE EXISTS (SELECT 1 FROM object_versions AS newer "
        "WHERE newer.collection_id = object_versions.collection_id AND newer.stix_id = object_versions.stix_id "
        "AND newer.version_us > object_versions.version_us)"
    )


def downgrade() -> None:
    with op.batch_alter_table("object_versions") as batch_op:
        batch_op.drop_column("newer_exists")
