"""ACS 3.0 markings: partners' ACS attributes, and stored ACS marking-definitions understood

Partners gain an ACS organisation token and shareability and entity categories (hub.acs). A
marking-definition carrying the ACS 3.0 extension was stored as an unknown marking; a valid,
unclassified one becomes an ACS marking, which the read rules now evaluate.

Revision ID: 0014_acs
Revises: 0011_stated_tlp
"""

import orjson
import sqlalchemy as sa
from alembic import op

from hub import acs

revision = "0014_acs"
down_revision = "0011_stated_tlp"
branch_labels = None
depends_on = None

MARKINGS = sa.table("markings", sa.column("id", sa.String), sa.column("kind", sa.String), sa.column("raw", sa.Text))
COLUMNS = ("acs_organization", "acs_shareability", "acs_entity")


def upgrade() -> None:
    with op.batch_alter_table("partners") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.String(100), nullable=False, server_default=""))
    conn = op.get_bind()
    rows = conn.execute(sa.select(MARKINGS.c.id, MARKINGS.c.raw).where(MARKINGS.c.kind == "other")).all()
    for marking_id, raw in rows:
        ext = (orjson.loads(raw).get("extensions") or {}).get(acs.ACS_EXTENSION_ID)
        if ext is not None and not acs.errors(ext) and acs.classification_refusal(ext) is None:
            conn.execute(sa.update(MARKINGS).where(MARKINGS.c.id == marking_id).values(kind="acs"))


def downgrade() -> None:
    op.execute(sa.update(MARKINGS).where(MARKINGS.c.kind == "acs").values(kind="other"))
    with op.batch_alter_table("partners") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
