"""API keys bound to a client certificate (SHA-256 fingerprint or subject)

Revision ID: 0016_key_certificates
Revises: 0014_acs
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_key_certificates"
down_revision = "0014_acs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("cert_sha256", sa.String(64), nullable=False, server_default=""))
        batch.add_column(sa.Column("cert_subject", sa.String(500), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("cert_subject")
        batch.drop_column("cert_sha256")
