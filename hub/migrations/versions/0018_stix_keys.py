"""Object versions found by lower-cased id: ids differing only in case are one id to the write rules

Revision ID: 0018_stix_keys
Revises: 0016_key_certificates
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_stix_keys"
down_revision = "0016_key_certificates"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_versions_stix_key", "object_versions", [sa.text("lower(stix_id)")])


def downgrade() -> None:
    op.drop_index("ix_versions_stix_key", "object_versions")
