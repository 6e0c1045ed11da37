"""Feedback: sightings and false-positive reports, the feedback collection and the false-positive threshold

Revision ID: 0024_feedback
Revises: 0023_object_values
"""

import sqlalchemy as sa
from alembic import op

revision = "0024_feedback"
down_revision = "0023_object_values"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch copy of ``collections`` (see 0022: a copy cascades to every version).
    op.add_column(
        "collections", sa.Column("is_feedback", sa.Boolean(), nullable=False, server_default=sa.text("false"))
    )
    op.add_column(
        "collections", sa.Column("false_positive_threshold", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "collections",
        sa.Column("false_positive_withdraw", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.create_table(
        "feedback",
        sa.Column("version_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target_id", sa.String(100), nullable=False),
        sa.Column("target_originator_id", sa.Integer(), nullable=False),
        sa.Column("reporter_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("first_seen_us", sa.BigInteger(), nullable=True),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("shared", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("added_us", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_feedback_target", "feedback", ["target_id", "target_originator_id"])
    op.create_index("ix_feedback_added", "feedback", ["added_us"])
    op.create_table(
        "false_positive_flags",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("stix_id", sa.String(100), nullable=False),
        sa.Column("originator_id", sa.Integer(), nullable=False),
        sa.Column("reporters", sa.Integer(), nullable=False),
        sa.Column("withdrawn", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("flagged_us", sa.BigInteger(), nullable=False),
        sa.Column("cleared_us", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_fp_flags_object", "false_positive_flags", ["collection_id", "stix_id"])


def downgrade() -> None:
    op.drop_index("ix_fp_flags_object", "false_positive_flags")
    op.drop_table("false_positive_flags")
    op.drop_index("ix_feedback_added", "feedback")
    op.drop_index("ix_feedback_target", "feedback")
    op.drop_table("feedback")
    for column in ("false_positive_withdraw", "false_positive_threshold", "is_feedback"):
        op.drop_column("collections", column)  # plain DROP COLUMN (SQLite 3.35+), as in 0022
