"""Operations: hash-chained audit trail and the delivery ledger

Revision ID: 0002_ops
Revises: 0001

Existing audit events are chained in id order during the upgrade, so a database
that predates the chain verifies from its first event.
"""

import hashlib

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0002_ops"
down_revision = "0001"
branch_labels = None
depends_on = None

_FIELDS = ("at_us", "actor", "action", "target", "source", "detail")


def _chain(prev: str, row: dict) -> str:
    # Must match hub.store.audit_hash; kept here so this migration never changes with later code.
    body = orjson.dumps({k: row[k] for k in _FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode() + body).hexdigest()


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=False, server_default=""))
        batch.add_column(sa.Column("hash", sa.String(length=64), nullable=False, server_default=""))
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    conn = op.get_bind()
    events = sa.table("audit_events", *(sa.column(c) for c in ("id", "prev_hash", "hash", *_FIELDS)))
    prev, last_id = "", 0
    for row in conn.execute(sa.select(events).order_by(events.c.id)).mappings().all():
        digest = _chain(prev, dict(row))
        conn.execute(sa.update(events).where(events.c.id == row["id"]).values(prev_hash=prev, hash=digest))
        prev, last_id = digest, row["id"]
    op.bulk_insert(head, [{"id": 1, "last_event_id": last_id, "hash": prev}])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("partner_slug", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=16), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("rules_version", sa.BigInteger(), nullable=False),
        sa.Column("first_added", sa.BigInteger(), nullable=True),
        sa.Column("last_added", sa.BigInteger(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deliveries_collection_range", "deliveries", ["collection_id", "first_added", "last_added"])
    op.create_index("ix_deliveries_at_us", "deliveries", ["at_us"])
    op.create_index("ix_deliveries_partner_id", "deliveries", ["partner_id"])
    op.create_table(
        "delivery_views",
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("rules_version", sa.BigInteger(), nullable=False),
        sa.Column("read_filter", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "collection_id", "rules_version"),
    )


def downgrade() -> None:
    op.drop_table("delivery_views")
    op.drop_index("ix_deliveries_partner_id", table_name="deliveries")
    op.drop_index("ix_deliveries_at_us", table_name="deliveries")
    op.drop_index("ix_deliveries_collection_range", table_name="deliveries")
    op.drop_table("deliveries")
    op.drop_table("audit_head")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
