"""Restriction sets: the partner that created each (its quota) and the markings each holds (the read filter)

Revision ID: 0019_restriction_quota
Revises: 0018_stix_keys
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_restriction_quota"
down_revision = "0018_stix_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("restriction_sets") as batch:
        batch.add_column(
            sa.Column(
                "created_by_id",
                sa.Integer(),
                sa.ForeignKey("partners.id", name="fk_restriction_sets_created_by"),
                nullable=True,
            )
        )
    op.create_table(
        "restriction_set_markings",
        sa.Column("restriction_set_id", sa.Integer(), sa.ForeignKey("restriction_sets.id"), primary_key=True),
        sa.Column("marking_id", sa.String(80), primary_key=True),
    )
    conn = op.get_bind()
    # A set stored before this revision counts against the partner whose version first carried it.
    conn.execute(
        sa.text(
            "UPDATE restriction_sets SET created_by_id = (SELECT v.originator_id FROM object_versions v "
            "WHERE v.restriction_set_id = restriction_sets.id ORDER BY v.pk LIMIT 1)"
        )
    )
    rows = [
        {"s": set_id, "m": marking_id}
        for set_id, ids in conn.execute(sa.text("SELECT id, marking_ids FROM restriction_sets"))
        for marking_id in ids.split(",")
        if marking_id
    ]
    if rows:
        conn.execute(
            sa.text("INSERT INTO restriction_set_markings (restriction_set_id, marking_id) VALUES (:s, :m)"), rows
        )


def downgrade() -> None:
    op.drop_table("restriction_set_markings")
    with op.batch_alter_table("restriction_sets") as batch:
        batch.drop_column("created_by_id")
