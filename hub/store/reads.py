"""The partner's view: every read of object versions, with the sharing rules as one WHERE clause.

Reads take a ``VersionQuery`` (one frozen value instead of a dozen arguments) and build the statement
from small ``_apply_*`` steps. The sharing rules arrive already compiled (``policy.ReadFilter``) and
become one clause (``_visible``), so a page costs the same whether the partner sees all of a
collection or a sliver of it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, exists, false, func, or_, select, true
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub import policy
from hub.ids import stix_key
from hub.policy import TLP
from hub.store.snapshots import HUB_SLUG, Snapshot
from hub.store.tables import FB, MK, PT, RSM, VT, of_collection


@dataclass(frozen=True)
class VersionQuery:
    """One read of a partner's view of a collection."""

    collection_pk: int
    read: policy.ReadFilter
    originator_pk: int
    added_after: int | None = None
    after: int | None = None
    ids: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    versions: tuple[str | int, ...] = ("last",)
    spec_versions: tuple[str, ...] = ()
    limit: int = 1000
    any_case: bool = False  # match ``ids`` under any spelling (``stix_key``), as the write rules do


@dataclass(frozen=True)
class _Shape:
    """What decides a read statement's SQL text; the values go in as bound parameters."""

    columns: tuple[str, ...]
    readable: bool
    typed_collection: bool
    red: bool
    ids: bool
    any_case: bool
    types: bool
    spec_versions: bool
    versions: tuple[str, ...]
    positioned: bool
    by_marking: bool = False
    feedback: bool = False


class _Param(Protocol):
    def __call__(self, name: str, *, expanding: bool = False) -> Any: ...


def _named(name: str, *, expanding: bool = False) -> Any:
    """A parameter bound at execution: the statement is built once per shape and cached."""
    return bindparam(name, expanding=expanding)


def _visible(v: Any, shape: _Shape, p: _Param = _named) -> ColumnElement[bool]:
    """The sharing rules (``policy.filter_admits``) as a SQL condition on one version row.

    The one visibility clause of the hub: ``p`` decides whether its values are bound at execution
    (``_named``, the cached page statements) or carried by the clause itself (``visible_as``).
    """
    c = v.c
    if not shape.readable:
        return false()
    if shape.by_marking:
        admitted = _set_admitted(c.restriction_set_id, p("admitted_markings", expanding=True))
    else:
        admitted = c.restriction_set_id.in_(p("admitted", expanding=True))
    below_red = and_(c.tlp < int(TLP.RED), or_(c.restriction_set_id.is_(None), admitted))
    sharing = below_red
    if shape.red:
        if shape.by_marking:
            named = exists(
                select(RSM.c.marking_id).where(
                    RSM.c.restriction_set_id == c.restriction_set_id,
                    RSM.c.marking_id.in_(p("red_markings", expanding=True)),
                )
            )
            at_red = and_(c.tlp == int(TLP.RED), c.restriction_set_id.is_not(None), admitted, named)
        else:
            at_red = and_(c.tlp == int(TLP.RED), c.restriction_set_id.in_(p("red_sets", expanding=True)))
        sharing = or_(below_red, at_red)
    content = and_(
        c.tlp <= p("max_tlp"),
        c.unknown_markings.is_(False),
        c.quarantined.is_(False),
        c.type.in_(p("collection_types", expanding=True)) if shape.typed_collection else true(),
        sharing,
        _definition_shown(c, p("shown_markings", expanding=True)),
    )
    if shape.feedback:
        # Policy step 9: in a feedback collection, only feedback about this partner's own objects.
        content = and_(
            content,
            exists(
                select(FB.c.version_pk).where(FB.c.version_pk == c.pk, FB.c.target_originator_id == p("originator"))
            ),
        )
    return or_(c.originator_id == p("originator"), content)


def _set_admitted(set_id: Any, admitted_markings: Any) -> ColumnElement[bool]:
    """A restriction set every marking of which admits the partner (``policy.compile_read`` per marking).

    The partner's admitted markings are bound, not its admitted sets: one primary-key probe per row,
    with a list that grows with the sharing markings, not with their combinations. A marking missing
    from the list (unknown, or one that does not admit the partner) fails the set closed.
    """
    other = select(RSM.c.marking_id).where(
        RSM.c.restriction_set_id == set_id, RSM.c.marking_id.not_in(admitted_markings)
    )
    return ~exists(other)


def _definition_shown(c: Any, shown: Any) -> ColumnElement[bool]:
    """Policy step 8: a row defining a partner's sharing marking passes only if that marking is in ``shown``.

    A partner's marking is a sharing row of the markings table not published by the hub (one primary-key
    look-up, made for marking-definition rows only), as ``Snapshot.definitions`` holds them.
    """
    hub = func.coalesce(select(PT.c.id).where(PT.c.slug == HUB_SLUG).scalar_subquery(), -1)
    partners_marking = exists(
        select(MK.c.id).where(
            MK.c.id == c.stix_id, MK.c.kind == "sharing", or_(MK.c.originator_id.is_(None), MK.c.originator_id != hub)
        )
    )
    return or_(c.type != "marking-definition", ~partners_marking, c.stix_id.in_(shown))


def _apply_filters(stmt, v: Any, shape: _Shape) -> Any:
    c = v.c
    collection: Any = bindparam("collection")
    in_collection = of_collection(c.collection_id, collection) if shape.ids else c.collection_id == collection
    stmt = stmt.where(in_collection, _visible(v, shape))
    if shape.ids:
        spelling = func.lower(c.stix_id) if shape.any_case else c.stix_id
        stmt = stmt.where(spelling.in_(bindparam("ids", expanding=True)))
    if shape.types:
        stmt = stmt.where(c.type.in_(bindparam("types", expanding=True)))
    if shape.spec_versions:
        stmt = stmt.where(c.spec_version.in_(bindparam("spec_versions", expanding=True)))
    return stmt


def _apply_versions(stmt, v: Any, shape: _Shape) -> Any:
    if "all" in shape.versions:
        return stmt
    conditions = []
    for wanted in shape.versions:
        if wanted in ("first", "last"):
            other = VT.alias()
            newer = other.c.version_us > v.c.version_us if wanted == "last" else other.c.version_us < v.c.version_us
            rival = _apply_filters(select(other.c.pk), other, shape).where(other.c.stix_id == v.c.stix_id, newer)
            if wanted == "last":
                # A version with no newer one stored is the last for everyone who sees it: only the others
                # (a few percent of a collection) need the search for a newer version this partner sees.
                conditions.append(or_(v.c.newer_exists.is_(False), ~exists(rival)))
            else:
                conditions.append(~exists(rival))
        else:
            conditions.append(v.c.version_us.in_(bindparam("version_values", expanding=True)))
    return stmt.where(or_(*conditions))


def _apply_position(stmt, v: Any, shape: _Shape) -> Any:
    # With ids given, the few matching rows are found by (collection, id) and sorted; "+ 0" keeps the
    # planner from walking the collection's date_added index instead.
    added = v.c.date_added + 0 if shape.ids else v.c.date_added
    if shape.positioned:
        stmt = stmt.where(added > bindparam("floor"))
    return stmt.order_by(added).limit(bindparam("limit"))


@functools.lru_cache(maxsize=256)
def _statement(shape: _Shape) -> Any:
    """Build (once per shape) the statement for a page of a partner's view."""
    stmt = select(*(VT.c[name] for name in shape.columns))
    return _apply_position(_apply_versions(_apply_filters(stmt, VT, shape), VT, shape), VT, shape)


def _bind(q: VersionQuery, columns: Sequence[str], *, by_marking: bool = True) -> tuple[_Shape, dict[str, Any]]:
    f = q.read
    floor = max(x for x in (q.added_after, q.after, -1) if x is not None)
    kinds = tuple(sorted({v if v in ("first", "last", "all") else "at" for v in q.versions}))
    shape = _Shape(
        tuple(columns),
        f.readable,
        bool(f.types),
        f.max_tlp >= TLP.RED,
        bool(q.ids),
        q.any_case,
        bool(q.types),
        bool(q.spec_versions),
        kinds,
        floor >= 0,
        by_marking and f.admitted_markings is not None,
        f.feedback,
    )
    params = {
        "collection": q.collection_pk,
        "originator": q.originator_pk,
        "max_tlp": int(f.max_tlp),
        # Per marking when compiled so (their count is bounded); the set lists only for filters saved without.
        **(
            {"admitted_markings": sorted(f.admitted_markings or ()), "red_markings": sorted(f.red_markings or ())}
            if shape.by_marking
            else {"admitted": sorted(f.admitted_sets), "red_sets": sorted(f.red_sets)}
        ),
        "shown_markings": sorted(f.shown_markings or ()),
        "collection_types": sorted(f.types),
        "ids": sorted({stix_key(i) for i in q.ids}) if q.any_case else list(q.ids),
        "types": list(q.types),
        "spec_versions": list(q.spec_versions),
        "floor": floor,
        "limit": q.limit + 1,
        "version_values": [v for v in q.versions if isinstance(v, int)],
    }
    return shape, params


def page(session: Session, q: VersionQuery, columns: Sequence[str]) -> tuple[list, bool]:
    """Return one page of the partner's view, oldest ``date_added`` first, and whether more follow."""
    shape, params = _bind(q, columns)
    stmt = _statement(shape)
    rows = session.connection().execute(stmt, _used_params(shape, params)).all()
    return list(rows[: q.limit]), len(rows) > q.limit


@functools.lru_cache(maxsize=256)
def _param_names(shape: _Shape) -> frozenset[str]:
    return frozenset(_statement(shape).compile().params)


def _used_params(shape: _Shape, params: dict[str, Any]) -> dict[str, Any]:
    names = _param_names(shape)
    return {k: v for k, v in params.items() if k in names}


def visible_as(v: Any, f: policy.ReadFilter, originator_pk: int) -> ColumnElement[bool]:
    """``_visible`` with the values carried by the clause, for the statements that compare two read filters.

    Restriction sets are matched by the filter's own set lists: a filter saved for an earlier rules
    version (``delivery_views``) admits what it admitted then, not sets created since.
    """
    shape, params = _bind(VersionQuery(0, f, originator_pk), ("pk",), by_marking=False)

    def inline(name: str, *, expanding: bool = False) -> Any:
        return bindparam(name, params[name], expanding=expanding, unique=True)

    return _visible(v, shape, inline)


def newly_visible(
    session: Session, collection_pk: int, partner_pk: int, now: policy.ReadFilter, before: policy.ReadFilter | None
) -> set[int]:
    """Return the versions of a collection a partner sees under ``now`` but did not under ``before``."""
    condition = visible_as(VT, now, partner_pk)
    if before is not None:
        condition = and_(condition, ~visible_as(VT, before, partner_pk))
    stmt = select(VT.c.pk).where(VT.c.collection_id == collection_pk, condition)
    return set(session.connection().execute(stmt).scalars())


def has_visible(session: Session, q: VersionQuery) -> bool:
    """Tell whether the partner's view holds any version of the queried ids."""
    probe = VersionQuery(q.collection_pk, q.read, q.originator_pk, ids=q.ids, versions=("all",), limit=0)
    rows, more = page(session, probe, ("pk",))
    return more


def readable_ids(
    session: Session, snapshot: Snapshot, partner_pk: int, ids: Iterable[str], *, own: bool = True
) -> set[str]:
    """The ids among ``ids`` of which the partner can read some version, under any spelling, in any collection.

    With ``own=False`` the partner's own versions (its quarantined copies) do not count: only what
    others published and the rules release to it.
    """
    wanted, found = tuple(sorted({stix_key(i) for i in ids})), set[str]()
    partner = snapshot.partners[partner_pk]
    for collection in snapshot.collections.values():
        rest = tuple(i for i in wanted if i not in found)
        if not rest:
            break
        if not snapshot.world.granted(collection.rules.readers, partner):
            continue
        q = VersionQuery(
            collection.pk,
            snapshot.read_filter(partner_pk, collection),
            partner_pk if own else 0,
            ids=rest,
            versions=("all",),
            limit=1000,
            any_case=True,
        )
        rows, _ = page(session, q, ("stix_id",))
        found.update(stix_key(r.stix_id) for r in rows)
    return {i for i in ids if stix_key(i) in found}


def removed_from_view(
    session: Session, collection_pk: int, partner_pk: int, now: policy.ReadFilter, before: policy.ReadFilter
) -> list:
    """Return the versions a partner saw under ``before`` of objects it sees no version of under ``now``."""
    other = VT.alias()
    still = exists(
        select(other.c.pk).where(
            other.c.collection_id == collection_pk, other.c.stix_id == VT.c.stix_id, visible_as(other, now, partner_pk)
        )
    )
    stmt = select(VT.c.pk, VT.c.stix_id, VT.c.type, VT.c.version_us, VT.c.tlp, VT.c.originator_id, VT.c.raw).where(
        VT.c.collection_id == collection_pk, visible_as(VT, before, partner_pk), ~still
    )
    return list(session.connection().execute(stmt).all())


def visible_versions(session: Session, collection_pk: int, stix_id: str, partner_pk: int, f: policy.ReadFilter) -> list:
    """Return every version of one object a partner's read filter admits in a collection."""
    stmt = select(VT.c.pk, VT.c.stix_id, VT.c.type, VT.c.version_us, VT.c.tlp, VT.c.originator_id, VT.c.raw).where(
        VT.c.collection_id == collection_pk, VT.c.stix_id == stix_id, visible_as(VT, f, partner_pk)
    )
    return list(session.connection().execute(stmt).all())


@functools.lru_cache(maxsize=64)
def _range_statement(shape: _Shape) -> Any:
    added = VT.c.date_added
    stmt = _apply_versions(
        _apply_filters(select(func.min(added), func.max(added), func.count()), VT, shape), VT, shape
    ).where(added <= bindparam("upto"))
    stmt = stmt.where(added > bindparam("floor")) if shape.positioned else stmt
    return stmt, frozenset(stmt.compile().params)


def view_range(session: Session, q: VersionQuery, upto: int) -> tuple[int | None, int | None, int]:
    """Return (first, last, count) of ``date_added`` over the partner's view from the query's floor to ``upto``."""
    shape, params = _bind(q, ("date_added",))
    stmt, names = _range_statement(shape)
    first, last, count = (
        session.connection().execute(stmt, {k: v for k, v in {**params, "upto": upto}.items() if k in names}).one()
    )
    return first, last, count or 0
