"""The write path's statements: adding, re-dating and deleting versions, origins, restriction sets, statuses.

The writers call these under the hub clock's lock (``clock.lock_clock`` or ``clock.add_dated``), in one
transaction with the audit event that records the change.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import Table, bindparam, case, delete, exists, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from hub import models as m
from hub.ids import stix_key
from hub.store import clock, values
from hub.store.snapshots import Snapshot, bump_rules
from hub.store.tables import AT, OO, VT, V, insert_sql, of_collection, stix_id_among


def restamp(session: Session, version_pks: Iterable[int]) -> int:
    """Give versions fresh ``date_added`` values after every value handed out so far, in their old order."""
    pks = sorted(version_pks)
    if not pks:
        return 0
    ordered: list[Any] = []
    for start in range(0, len(pks), 500):
        chunk = pks[start : start + 500]
        ordered += session.connection().execute(select(VT.c.pk, VT.c.date_added).where(VT.c.pk.in_(chunk))).all()
    ordered.sort(key=lambda row: row[1])
    moves = [{"b_pk": row[0], "old": row[1]} for row in ordered]
    first = clock.add_dated(session, moves, "b_at")
    # The delivery ledger finds what a page held by date_added: keep the values these versions leave.
    session.execute(
        insert(m.VersionRedate),
        [{"version_pk": r["b_pk"], "date_added": r["old"], "replaced_us": first} for r in moves],
    )
    session.connection().execute(
        update(VT).where(VT.c.pk == bindparam("b_pk")).values(date_added=bindparam("b_at")),
        [{"b_pk": r["b_pk"], "b_at": r["b_at"]} for r in moves],
    )
    return len(moves)


def delete_versions(session: Session, collection_pk: int, stix_id: str, version_pks: Iterable[int]) -> int:
    pks = list(version_pks)
    if not pks:
        return 0
    session.execute(delete(V).where(V.collection_id == collection_pk, V.stix_id == stix_id, V.pk.in_(pks)))
    refresh_newer(session, collection_pk, [stix_id])
    return len(pks)


def refresh_newer(session: Session, collection_pk: int, stix_ids: Iterable[str]) -> None:
    """Set ``newer_exists`` on every stored version of these objects in a collection.

    Run after versions are added or deleted, in the same transaction and under the writer lock
    (``lock_clock``), so that it sees every committed version: a version marked as having no newer
    one is then the newest stored, which the read path relies on.
    """
    ids = sorted(set(stix_ids))
    if not ids:
        return
    newer = VT.alias()
    has_newer = exists(
        select(newer.c.pk).where(
            newer.c.collection_id == VT.c.collection_id,
            newer.c.stix_id == VT.c.stix_id,
            newer.c.version_us > VT.c.version_us,
        )
    )
    session.connection().execute(
        update(VT)
        .where(
            of_collection(VT.c.collection_id, collection_pk),
            stix_id_among(session, ids, VT.c.stix_id),
            VT.c.newer_exists != has_newer,
        )  # rewrite only the rows that change
        .values(newer_exists=has_newer)
    )


@dataclass
class Publication:
    """What is stored under an envelope's ids, as the write rules need it.

    ``origins``: originator pk per ``stix_key`` (kept after the id's versions are deleted).
    ``raws``: raw JSON per (id, version_us, poster) in the collection, where poster is 0 for the
    originator's versions and the poster's pk for a quarantined copy (stored or archived).
    ``first_tlp``: the effective TLP of each (``stix_key``, version_us) at its first publication, anywhere,
    under any spelling of the id.
    """

    origins: dict[str, int]
    raws: dict[tuple[str, int, int], str]
    first_tlp: dict[tuple[str, int], int]


def publication(
    session: Session, collection_pk: int, stix_ids: Iterable[str], also_origins: Iterable[str] = ()
) -> Publication:
    """Read the origins, this collection's stored versions and the first TLPs of ``stix_ids`` in one pass each.

    ``also_origins``: more ids whose origins alone are wanted (the identities objects name as creator).
    """
    ids = sorted(set(stix_ids))
    keys = sorted({stix_key(i) for i in [*ids, *also_origins]})
    origins = dict(
        session.execute(
            select(OO.c.stix_key, OO.c.originator_id).where(stix_id_among(session, keys, OO.c.stix_key))
        ).all()
    )
    stmt = select(
        V.stix_id,
        V.version_us,
        V.originator_id,
        V.quarantined,
        V.tlp,
        V.date_added,
        case((V.collection_id == collection_pk, V.raw)),
    ).where(stix_id_among(session, {stix_key(i) for i in ids}, func.lower(V.stix_id)))
    raws: dict[tuple[str, int, int], str] = {}
    first: dict[tuple[str, int], tuple[int, int]] = {}
    for stix_id, version_us, originator, quarantined, tlp, added, raw in session.execute(stmt):
        if raw is not None:
            raws[(stix_id, version_us, originator if quarantined else 0)] = raw
        key = (stix_key(stix_id), version_us)
        if not quarantined and added < first.get(key, (added + 1, 0))[0]:
            first[key] = (added, tlp)
    archived = select(AT.c.stix_id, AT.c.version_us, AT.c.originator_id, AT.c.quarantined, AT.c.raw).where(
        of_collection(AT.c.collection_id, collection_pk), stix_id_among(session, ids, AT.c.stix_id)
    )
    for stix_id, version_us, originator, quarantined, raw in session.execute(archived):
        # An archived version is still this collection's: publishing it again is a duplicate, not new.
        raws.setdefault((stix_id, version_us, originator if quarantined else 0), raw)
    return Publication(origins, raws, {k: tlp for k, (_, tlp) in first.items()})


# The origins of an envelope in one statement: PostgreSQL takes the columns as three arrays, SQLite runs
# one prepared statement over the rows (sqlite3's executemany, no per-row work in SQLAlchemy).
_ORIGINS_POSTGRESQL = (
    "INSERT INTO object_origins (stix_key, originator_id, created_us) "
    "SELECT * FROM unnest(%(keys)s::text[], %(originators)s::bigint[], %(created)s::bigint[]) "
    "ON CONFLICT (stix_key) DO NOTHING"
)
_ORIGINS_SQLITE = (
    "INSERT INTO object_origins (stix_key, originator_id, created_us) VALUES (?, ?, ?) "
    "ON CONFLICT (stix_key) DO NOTHING"
)


def register_origins(session: Session, rows: Iterable[dict]) -> None:
    """Record the originator of every id among ``rows`` that has none yet (the first publication wins)."""
    new: dict[str, tuple[str, int, int]] = {}
    for row in rows:
        if not row.get("quarantined"):
            key = stix_key(row["stix_id"])
            if key not in new:
                new[key] = (key, row["originator_id"], row["date_added"])
    if not new:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        keys, originators, created = (list(column) for column in zip(*new.values(), strict=True))
        conn.exec_driver_sql(_ORIGINS_POSTGRESQL, {"keys": keys, "originators": originators, "created": created})
    else:
        conn.exec_driver_sql(_ORIGINS_SQLITE, list(new.values()))


def holds_copy(session: Session, obj: dict, version_us: int) -> bool:
    """Tell whether this exact object version is stored, not quarantined, in some collection."""
    stmt = select(V.raw).where(V.stix_id == obj["id"], V.version_us == version_us, V.quarantined.is_(False)).limit(1)
    raw = session.execute(stmt).scalar()
    return raw is not None and orjson.loads(raw) == obj


def stored_versions(session: Session, collection_pk: int, stix_ids: Iterable[str]) -> dict[tuple[str, int], str]:
    """Return the raw JSON of every stored or archived (id, version) among ``stix_ids`` in a collection."""
    ids = sorted(set(stix_ids))
    stmt = select(V.stix_id, V.version_us, V.raw).where(
        of_collection(V.collection_id, collection_pk), stix_id_among(session, ids)
    )
    out = {(stix_id, version_us): raw for stix_id, version_us, raw in session.execute(stmt)}
    _add_archived(session, collection_pk, ids, out)
    return out


def _add_archived(session: Session, collection_pk: int, ids: list[str], out: dict[tuple[str, int], str]) -> None:
    # An archived version is still this collection's: publishing it again is a duplicate, not new.
    archived = select(AT.c.stix_id, AT.c.version_us, AT.c.raw).where(
        of_collection(AT.c.collection_id, collection_pk), stix_id_among(session, ids, AT.c.stix_id)
    )
    for stix_id, version_us, raw in session.execute(archived):
        out.setdefault((stix_id, version_us), raw)


def add_versions(session: Session, rows: list[dict], terms: Sequence[list[tuple[str, str]] | None] = ()) -> int:
    """Store new version rows: date them (``clock.add_dated``), insert them with their search terms
    (``values.term_rows``; ``terms``, when given, holds those of each row worked out ahead, or None)
    and record their ids' origins.

    The one way versions enter the store (ingest and the reference collection); the caller then runs
    ``refresh_newer`` on the ids that may now have a newer version. Return the first ``date_added``.
    """
    start = clock.add_dated(session, rows)
    insert_versions(session, rows)
    insert_tuples(session, values.TERMS, values.TERM_COLUMNS, values.term_rows(session, rows, terms))
    register_origins(session, rows)
    return start


def insert_versions(session: Session, rows: list[dict]) -> None:
    """Insert version rows (all with the same keys) in one executemany straight to the driver."""
    insert_rows(session, VT, rows)


def insert_rows(session: Session, table: Table, rows: list[dict]) -> None:
    """Insert rows (all with the same keys) into ``table`` in one statement straight to the driver.

    The values are plain ints, strings, booleans and None, which both drivers bind as they are, so
    the statement is compiled once per dialect and column set and no per-row processing is done.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        keys = tuple(rows[0])
        insert_tuples(session, table, keys, map(_values_of(keys), rows))
        return
    sql, names = insert_sql(conn.dialect, tuple(rows[0]), table)
    conn.exec_driver_sql(sql, list(map(_values_of(names), rows)) if names else rows)


def insert_tuples(session: Session, table: Table, keys: tuple[str, ...], values: Iterable[tuple]) -> None:
    """Insert rows given as tuples of the columns ``keys`` into ``table``, as ``insert_rows`` does."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # COPY: one statement streams the whole envelope (an INSERT per row is a server round of work each).
        columns = ", ".join(table.c[key].name for key in keys)  # the table's own column names, never input
        driver = conn.connection.driver_connection
        assert driver is not None, "an open connection has its driver connection"
        with driver.cursor().copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        return
    sql, names = insert_sql(conn.dialect, keys, table)
    params: list[Any] = list(values)
    if names is None:  # named parameters
        params = [dict(zip(keys, row, strict=True)) for row in params]
    elif names != keys:
        order = [keys.index(name) for name in names]
        params = [tuple(row[i] for i in order) for row in params]
    if params:
        conn.exec_driver_sql(sql, params)


def _values_of(keys: tuple[str, ...]) -> Callable[[dict], tuple]:
    """A function that returns a row's values of ``keys`` as a tuple, in that order (C speed: itemgetter)."""
    if len(keys) == 1:
        return lambda row: (row[keys[0]],)
    return operator.itemgetter(*keys)


def find_restriction_set(session: Session, snapshot: Snapshot, marking_ids: Iterable[str]) -> int | None:
    """Return the id of the restriction set holding exactly these sharing markings, if one is stored."""
    key = ",".join(sorted(set(marking_ids)))
    if key in snapshot.restriction_keys:
        return snapshot.restriction_keys[key]
    return session.execute(select(m.RestrictionSet.id).where(m.RestrictionSet.marking_ids == key)).scalar()


def create_restriction_set(session: Session, marking_ids: Iterable[str], created_by: int) -> int:
    """Store a new restriction set of these sharing markings, counted against ``created_by``; return its id."""
    ids = sorted(set(marking_ids))
    stmt = insert(m.RestrictionSet).values(marking_ids=",".join(ids), created_by_id=created_by)
    found = session.execute(stmt.returning(m.RestrictionSet.id)).scalar_one()
    session.execute(insert(m.RestrictionSetMarking), [{"restriction_set_id": found, "marking_id": i} for i in ids])
    bump_rules(session)
    return found


def restriction_sets_created_by(session: Session, partner_pk: int) -> int:
    """How many restriction sets a partner's posts created (its ``max_restriction_sets_per_partner`` count)."""
    stmt = select(func.count()).select_from(m.RestrictionSet).where(m.RestrictionSet.created_by_id == partner_pk)
    return session.execute(stmt).scalar_one()


def sharing_markings_of(session: Session, partner_pk: int) -> int:
    """How many sharing markings (the hub's and ACS ones) a partner defined (``max_sharing_markings_per_partner``)."""
    stmt = (
        select(func.count())
        .select_from(m.Marking)
        .where(m.Marking.originator_id == partner_pk, m.Marking.kind.in_(("sharing", "acs")))
    )
    return session.execute(stmt).scalar_one()


def save_marking(session: Session, row: dict) -> None:
    session.execute(insert(m.Marking).values(**row))
    bump_rules(session)


def save_status(session: Session, status: m.Status) -> None:
    session.add(status)


def get_status(session: Session, status_id: str) -> m.Status | None:
    return session.get(m.Status, status_id)


def purge_statuses(session: Session, older_than_us: int, *, dry_run: bool = False) -> int:
    """Delete (dry: count) the TAXII status resources of requests made before ``older_than_us``."""
    old = m.Status.request_us < older_than_us
    if dry_run:
        return session.scalar(select(func.count()).select_from(m.Status).where(old)) or 0
    return cast(CursorResult, session.execute(delete(m.Status).where(old))).rowcount or 0


def versions_by_id(session: Session, stix_id: str) -> list[m.ObjectVersion]:
    """Every stored version of an object, in every collection."""
    return list(session.scalars(select(V).where(V.stix_id == stix_id).order_by(V.collection_id, V.version_us)))
