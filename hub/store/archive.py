"""Retention: superseded versions move to the archive, where the write rules still find them."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub import models as m
from hub.store.tables import AT, VT

# Archived rows keep what was stored, not the read path's ``newer_exists`` (only superseded rows are archived).
_VERSION_COLUMNS = tuple(c.name for c in VT.columns if c.name != "newer_exists")


def retained_collections(session: Session) -> list[tuple[int, str, str, int]]:
    """Return (pk, API root, alias, retention_days) of every collection with a retention, by root and alias."""
    stmt = (
        select(m.Collection.id, m.ApiRoot.slug, m.Collection.alias, m.Collection.retention_days)
        .join(m.ApiRoot, m.ApiRoot.id == m.Collection.api_root_id)
        .where(m.Collection.retention_days.is_not(None), m.Collection.is_reference.is_(False))
        .order_by(m.ApiRoot.slug, m.Collection.alias)
    )
    return [(pk, root, alias, days or 0) for pk, root, alias, days in session.execute(stmt)]


def _superseded(collection_pk: int, added_before_us: int) -> ColumnElement[bool]:
    """Versions of a collection added before a time for which a newer version of the object is stored.

    The row with the highest ``pk`` of the table always stays: SQLite gives a new row max(pk) + 1, so an
    archived version's ``pk`` is never handed to another version, and records kept per version (the
    archive, ``version_redates``) go on naming exactly one version.
    """
    newer, every = VT.alias(), VT.alias()
    # The newer version must reach everyone the old one reached: no higher TLP, the same sharing markings,
    # no unknown marking the old one did not have (same object, so same type and originator). Archiving
    # then never takes an object away from a partner, whatever its rules.
    rival = select(newer.c.pk).where(
        newer.c.collection_id == VT.c.collection_id,
        newer.c.stix_id == VT.c.stix_id,
        newer.c.version_us > VT.c.version_us,
        newer.c.tlp <= VT.c.tlp,
        or_(
            newer.c.restriction_set_id == VT.c.restriction_set_id,
            and_(newer.c.restriction_set_id.is_(None), VT.c.restriction_set_id.is_(None)),
        ),
        or_(newer.c.unknown_markings.is_(False), VT.c.unknown_markings.is_(True)),
    )
    highest = select(func.max(every.c.pk)).scalar_subquery()
    return and_(
        VT.c.collection_id == collection_pk, VT.c.date_added < added_before_us, exists(rival), VT.c.pk < highest
    )


def count_superseded(session: Session, collection_pk: int, added_before_us: int) -> int:
    stmt = select(func.count()).select_from(VT).where(_superseded(collection_pk, added_before_us))
    return session.connection().execute(stmt).scalar_one()


def archive_superseded(session: Session, collection_pk: int, added_before_us: int, limit: int, at_us: int) -> int:
    """Move up to ``limit`` superseded versions (oldest ``date_added`` first) into the archive; return how many.

    The caller holds the writer lock (``lock_clock``), so no version is added or archived meanwhile.
    """
    conn = session.connection()
    stmt = select(VT.c.pk).where(_superseded(collection_pk, added_before_us)).order_by(VT.c.date_added).limit(limit)
    pks = list(conn.execute(stmt).scalars())
    if not pks:
        return 0
    archived_us = bindparam("archived_us", at_us, type_=AT.c.archived_us.type)
    copy = select(*(VT.c[name] for name in _VERSION_COLUMNS), archived_us)
    conn.execute(insert(AT).from_select([*_VERSION_COLUMNS, "archived_us"], copy.where(VT.c.pk.in_(pks))))
    conn.execute(delete(VT).where(VT.c.pk.in_(pks)))
    return len(pks)


def archived_by_id(session: Session, stix_id: str) -> list[m.ArchivedVersion]:
    """Every archived version of an object, in every collection."""
    stmt = select(m.ArchivedVersion).where(m.ArchivedVersion.stix_id == stix_id)
    return list(session.scalars(stmt.order_by(m.ArchivedVersion.collection_id, m.ArchivedVersion.version_us)))
