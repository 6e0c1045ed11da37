"""Versions: date_added is unique per collection, and that index is the only one ordered by it

A page or a head poll walks one collection in ``date_added`` order. With a second, hub-wide index on
``date_added``, PostgreSQL's planner could pick it and then step over every newer version of every
other collection (a head poll took 5 ms instead of 0.5 ms behind 10,000 versions published to another
collection). The per-collection index becomes the unique one and the hub-wide constraint goes.
SQLite keeps the table's original UNIQUE(date_added): dropping it would rebuild the table, and its
planner already takes the per-collection index for these statements.

Revision ID: 0004_collection_added
Revises: 0003_feed_schedule
"""

from alembic import op

revision = "0004_collection_added"
down_revision = "0003_feed_schedule"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_versions_collection_added", table_name="object_versions")
    op.create_index("ix_versions_collection_added", "object_versions", ["collection_id", "date_added"], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("object_versions_date_added_key", "object_versions", type_="unique")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("object_versions_date_added_key", "object_versions", ["date_added"])
    op.drop_index("ix_versions_collection_added", table_name="object_versions")
    op.create_index("ix_versions_collection_added", "object_versions", ["collection_id", "date_added"])
