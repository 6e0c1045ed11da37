"""Markings that state a TLP under their own id count as that TLP

A marking-definition whose TLP 2.0 extension, name or statement states a TLP (``"TLP:RED"``, the
shape OpenCTI exports) was stored as a statement or an unknown marking, and objects relying on it
went out at their collection's default. Such markings become TLP markings of the level they state
(the strictest, where several are stated), and every stored version whose JSON names one is raised
to at least that level.

Revision ID: 0011_stated_tlp
Revises: 0006_origins
"""

import orjson
import sqlalchemy as sa
from alembic import op

from hub import stix

revision = "0011_stated_tlp"
down_revision = "0006_origins"
branch_labels = None
depends_on = None

MARKINGS = sa.table(
    "markings",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("tlp", sa.SmallInteger),
    sa.column("raw", sa.Text),
)


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(MARKINGS.c.id, MARKINGS.c.kind, MARKINGS.c.raw).where(
            MARKINGS.c.kind.in_(("statement", "other", "sharing"))
        )
    ).all()
    for marking_id, kind, raw in rows:
        level = stix.stated_tlp(orjson.loads(raw))
        if level is None:
            continue
        conn.execute(
            sa.update(MARKINGS)
            .where(MARKINGS.c.id == marking_id)
            .values(kind="sharing" if kind == "sharing" else "tlp", tlp=int(level))
        )
        for table in ("object_versions", "archived_versions"):
            versions = sa.table(table, sa.column("tlp", sa.SmallInteger), sa.column("raw", sa.Text))
            conn.execute(
                sa.update(versions)
                .where(versions.c.tlp < int(level), versions.c.raw.contains(marking_id))
                .values(tlp=int(level))
            )


def downgrade() -> None:
    """Markings keep the level they state: serving them at a lower TLP again would leak."""
