"""Per-collection switch: whether the blocklists list values on a warninglist (private addresses, top sites)

Revision ID: 0022_blocklist_warninglists
Revises: 0021_admin_mfa
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_blocklist_warninglists"
down_revision = "0021_admin_mfa"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN, never a batch copy of the table: on SQLite a batch would recreate ``collections``
    # (its default is an expression), and dropping the old table cascades to every object version.
    op.add_column(
        "collections",
        sa.Column("blocklist_allow_warninglisted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )


def downgrade() -> None:
    op.drop_column("collections", "blocklist_allow_warninglisted")  # plain DROP COLUMN (SQLite 3.35+), as above
