"""Search terms of object versions for the admin panel (names, aliases, observable values) and an index by type

Revision ID: 0023_object_values
Revises: 0022_blocklist_warninglists
"""

import orjson
import sqlalchemy as sa
from alembic import op

from hub.stix.values import search_terms

revision = "0023_object_values"
down_revision = "0022_blocklist_warninglists"
branch_labels = None
depends_on = None

BATCH = 2000
_versions = sa.table("object_versions", sa.column("pk", sa.BigInteger()), sa.column("raw", sa.Text()))
_terms = sa.table(
    "object_values", sa.column("version_pk", sa.BigInteger()), sa.column("kind", sa.String()), sa.column("term")
)


def upgrade() -> None:
    # The "C" collation on PostgreSQL: binary order keeps the terms starting with one prefix in one index range
    # (SQLite compares text in binary order already).
    term = sa.String(200).with_variant(sa.String(200, collation="C"), "postgresql")
    op.create_table(
        "object_values",
        sa.Column(
            "version_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("object_versions.pk", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("term", term, primary_key=True),
        sqlite_with_rowid=False,  # clustered on (version_pk, term): rows append, a version's rows sit together
    )
    _backfill(op.get_bind())
    op.create_index("ix_object_values_term", "object_values", ["term", "version_pk"])
    # The panel lists a type's versions newest first, and the dashboard finds the intrusion sets, by this index.
    op.create_index("ix_versions_type", "object_versions", ["type", "pk"])


def _backfill(conn: sa.engine.Connection) -> None:
    """Write the terms of every stored version, a batch of versions at a time (the index is built after)."""
    last = -1
    while True:
        stmt = sa.select(_versions.c.pk, _versions.c.raw).where(_versions.c.pk > last).order_by(_versions.c.pk)
        chunk = conn.execute(stmt.limit(BATCH)).all()
        if not chunk:
            return
        rows = [
            {"version_pk": pk, "kind": kind, "term": term}
            for pk, raw in chunk
            for kind, term in search_terms(orjson.loads(raw))
        ]
        if rows:
            conn.execute(_terms.insert(), rows)
        last = chunk[-1][0]


def downgrade() -> None:
    op.drop_index("ix_versions_type", table_name="object_versions")
    op.drop_index("ix_object_values_term", table_name="object_values")
    op.drop_table("object_values")
