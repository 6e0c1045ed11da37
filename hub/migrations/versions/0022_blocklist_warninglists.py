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
    with op.batch_alter_table("collections") as batch:
        batch.add_column(
            sa.Column("blocklist_allow_warninglisted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("blocklist_allow_warninglisted")
