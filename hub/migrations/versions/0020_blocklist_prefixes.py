"""Per-collection blocklist limits: the widest IPv4 and IPv6 networks a collection's ip.txt lists

Revision ID: 0020_blocklist_prefixes
Revises: 0019_restriction_quota
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_blocklist_prefixes"
down_revision = "0019_restriction_quota"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("blocklist_ipv4_prefix", sa.SmallInteger(), nullable=False, server_default="24"))
        batch.add_column(sa.Column("blocklist_ipv6_prefix", sa.SmallInteger(), nullable=False, server_default="48"))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("blocklist_ipv6_prefix")
        batch.drop_column("blocklist_ipv4_prefix")
