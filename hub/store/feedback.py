"""The feedback tables: sightings and opinions stored in feedback collections, and false-positive flags.

``feedback`` holds one row per stored feedback version (named by its ``object_versions`` pk); counts
read it joined to the version rows still stored, so a deleted or archived version no longer counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from hub import models as m
from hub.policy import TLP
from hub.store.tables import FB, VT, of_collection

FT = m.FalsePositiveFlag.__table__


@dataclass(frozen=True)
class Entry:
    """One current (newest, not revoked) feedback version about a target, as the counts need it."""

    target_id: str
    originator_pk: int
    kind: str
    reporter_pk: int
    count: int
    first_seen_us: int | None
    last_seen_us: int | None
    tlp: TLP
    restricted: bool
    unknown_markings: bool


def save(session: Session, rows: list[dict]) -> None:
    """Record feedback versions (``version_pk`` and the target they are about)."""
    if rows:
        session.execute(insert(m.Feedback), rows)


def version_pks(session: Session, collection_pk: int, dates: Iterable[int]) -> dict[int, int]:
    """The pks of a collection's versions by ``date_added`` (unique per collection)."""
    wanted = sorted(set(dates))
    out: dict[int, int] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        stmt = select(VT.c.date_added, VT.c.pk).where(VT.c.collection_id == collection_pk, VT.c.date_added.in_(chunk))
        out.update({added: pk for added, pk in session.connection().execute(stmt)})
    return out


def receivers(session: Session, version_pks: Iterable[int]) -> dict[int, int]:
    """The partner each feedback version goes to (the originator of its target), by version pk."""
    pks = sorted(set(version_pks))
    out: dict[int, int] = {}
    for start in range(0, len(pks), 500):
        stmt = select(FB.c.version_pk, FB.c.target_originator_id).where(FB.c.version_pk.in_(pks[start : start + 500]))
        out.update(dict(session.connection().execute(stmt).all()))
    return out


def current(session: Session, targets: Iterable[tuple[str, int]]) -> list[Entry]:
    """Every current feedback version about these (target id, originator pk) pairs, in any feedback collection.

    Current: its version row is still stored, no newer version of it is, and it is not revoked.
    """
    pairs = sorted(set(targets))
    out: list[Entry] = []
    for start in range(0, len(pairs), 200):
        chunk = pairs[start : start + 200]
        stmt = (
            select(
                FB.c.target_id,
                FB.c.target_originator_id,
                FB.c.kind,
                FB.c.reporter_id,
                FB.c.count,
                FB.c.first_seen_us,
                FB.c.last_seen_us,
                VT.c.tlp,
                VT.c.restriction_set_id,
                VT.c.unknown_markings,
            )
            .join(VT, VT.c.pk == FB.c.version_pk)
            .where(
                FB.c.target_id.in_(sorted({t for t, _ in chunk})),
                VT.c.newer_exists.is_(False),
                FB.c.revoked.is_(False),
            )
        )
        wanted = set(chunk)
        for r in session.connection().execute(stmt):
            if (r.target_id, r.target_originator_id) in wanted:
                out.append(
                    Entry(
                        r.target_id,
                        r.target_originator_id,
                        r.kind,
                        r.reporter_id,
                        r[4],
                        r.first_seen_us,
                        r.last_seen_us,
                        TLP(r.tlp),
                        r.restriction_set_id is not None,
                        bool(r.unknown_markings),
                    )
                )
    return out


def targets_of(session: Session, collection_pk: int, stix_id: str) -> list[tuple[str, int]]:
    """The (target, originator pk) pairs the versions of one feedback object are about."""
    stmt = select(FB.c.target_id, FB.c.target_originator_id).where(
        FB.c.collection_id == collection_pk, FB.c.stix_id == stix_id
    )
    return sorted(set(session.connection().execute(stmt).all()))


def active_flag(session: Session, collection_pk: int, stix_id: str) -> m.FalsePositiveFlag | None:
    stmt = select(m.FalsePositiveFlag).where(
        m.FalsePositiveFlag.collection_id == collection_pk,
        m.FalsePositiveFlag.stix_id == stix_id,
        m.FalsePositiveFlag.cleared_us.is_(None),
    )
    return session.scalars(stmt).first()


def add_flag(session: Session, row: dict) -> None:
    session.execute(insert(m.FalsePositiveFlag), [row])


def clear_flag(session: Session, flag_id: int, at_us: int) -> None:
    session.execute(update(m.FalsePositiveFlag).where(m.FalsePositiveFlag.id == flag_id).values(cleared_us=at_us))


def withdrawn_ids(session: Session, collection_pk: int) -> set[str]:
    """The indicators of a collection its blocklists leave out now: flagged as false positives, withdrawn."""
    stmt = select(FT.c.stix_id).where(
        FT.c.collection_id == collection_pk, FT.c.withdrawn.is_(True), FT.c.cleared_us.is_(None)
    )
    return set(session.connection().execute(stmt).scalars())


def flags_of(session: Session, stix_id: str) -> list:
    """Every withdrawing false-positive flag an object has had, in any collection (for the delivery ledger)."""
    stmt = select(FT.c.collection_id, FT.c.flagged_us, FT.c.cleared_us).where(
        FT.c.stix_id == stix_id, FT.c.withdrawn.is_(True)
    )
    return list(session.connection().execute(stmt).all())


def listing(session: Session, *, originator_pk: int | None = None, since_us: int | None = None) -> list:
    """Feedback versions for the operator's listing, oldest first, with whether each is still current."""
    stmt = (
        select(
            FB.c.added_us,
            FB.c.kind,
            FB.c.stix_id,
            FB.c.target_id,
            FB.c.target_originator_id,
            FB.c.reporter_id,
            FB.c.count,
            FB.c.last_seen_us,
            FB.c.shared,
            FB.c.revoked,
            VT.c.newer_exists,
            VT.c.pk.label("stored"),
        )
        .select_from(FB.outerjoin(VT, VT.c.pk == FB.c.version_pk))
        .order_by(FB.c.added_us, FB.c.version_pk)
    )
    if originator_pk is not None:
        stmt = stmt.where(FB.c.target_originator_id == originator_pk)
    if since_us is not None:
        stmt = stmt.where(FB.c.added_us > since_us)
    return list(session.connection().execute(stmt).all())


def holders(session: Session, root_collections: Iterable[int], target_id: str, originator_pk: int) -> list:
    """The newest stored version of a target by its originator in each of these collections (not quarantined)."""
    newest = VT.alias()
    c = VT.c
    stmt = select(c.pk, c.collection_id, c.tlp, c.restriction_set_id, c.unknown_markings, c.raw, c.type).where(
        VT.c.collection_id.in_(sorted(set(root_collections))),
        VT.c.stix_id == target_id,
        VT.c.originator_id == originator_pk,
        VT.c.quarantined.is_(False),
        ~select(newest.c.pk)
        .where(
            newest.c.collection_id == VT.c.collection_id,
            newest.c.stix_id == VT.c.stix_id,
            newest.c.originator_id == originator_pk,
            newest.c.quarantined.is_(False),
            newest.c.version_us > VT.c.version_us,
        )
        .exists(),
    )
    return list(session.connection().execute(stmt).all())


def newest_raw(session: Session, collection_pk: int, stix_id: str) -> str | None:
    """The raw JSON of the newest stored version of an object in a collection."""
    stmt = (
        select(VT.c.raw)
        .where(of_collection(VT.c.collection_id, collection_pk), VT.c.stix_id == stix_id)
        .order_by(VT.c.version_us.desc())
        .limit(1)
    )
    return session.connection().execute(stmt).scalar()


def version_pks_of(session: Session, collection_pk: int, stix_id: str) -> list[int]:
    stmt = select(VT.c.pk).where(VT.c.collection_id == collection_pk, VT.c.stix_id == stix_id)
    return list(session.connection().execute(stmt).scalars())
