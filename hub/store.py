"""Storage: every SQL statement the hub runs lives here.

Reads take a ``VersionQuery`` (one frozen value instead of a dozen arguments) and
build the statement from small ``_apply_*`` steps. The sharing rules arrive
already compiled (``policy.ReadFilter``) and become one WHERE clause, so a page
costs the same whether the partner sees all of a collection or a sliver of it.

Writes that add object versions first lock the hub clock row: writers queue on
that lock, take their ``date_added`` values under it and commit before the next
writer reads the clock. So ``date_added`` is unique and commits happen in
``date_added`` order: a reader that has seen a value never sees a smaller one
appear later.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from sqlalchemy import (
    Engine,
    String,
    Table,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exc,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from hub import acs, formats, policy
from hub import models as m
from hub.policy import TLP


def now_us() -> int:
    return time.time_ns() // 1000


def split_list(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


# --------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class CollectionInfo:
    pk: int
    uuid: str
    api_root: str
    alias: str
    title: str
    description: str
    is_reference: bool
    rules: policy.Collection
    blocklist: formats.BlocklistLimits = formats.BlocklistLimits()


@dataclass(frozen=True)
class ApiRootInfo:
    pk: int
    slug: str
    title: str
    description: str
    max_content_length: int


@dataclass(frozen=True)
class MarkingInfo:
    id: str
    kind: str
    tlp: TLP | None
    raw: str
    sharing: policy.SharingMarking | None
    originator: int | None = None


@dataclass
class Snapshot:
    """The sharing configuration at one ``rules_version``, loaded once and shared by requests."""

    rules_version: int
    hub_name: str
    hub_contact: str
    hub_identity: str
    world: policy.World
    partners: dict[int, policy.Partner]
    partner_rows: dict[int, m.Partner]
    by_slug: dict[str, int]
    roots: dict[str, ApiRootInfo]
    collections: dict[str, CollectionInfo]
    markings: dict[str, MarkingInfo]
    restriction_sets: dict[int, tuple[policy.SharingMarking, ...]]
    restriction_keys: dict[str, int]
    identities: dict[str, str] = field(default_factory=dict)
    # Partners' sharing markings by id: their definitions go only to the partners they admit (policy step 8).
    definitions: dict[str, policy.SharingMarking] = field(default_factory=dict)
    _filters: dict[tuple[int, str], policy.ReadFilter] = field(default_factory=dict)

    def partner(self, slug: str) -> policy.Partner:
        return self.partners[self.by_slug[slug]]

    def collections_of(self, root: str) -> list[CollectionInfo]:
        return sorted((c for c in self.collections.values() if c.api_root == root), key=lambda c: (c.alias, c.uuid))

    def find_collection(self, root: str, id_or_alias: str) -> CollectionInfo | None:
        """The collection of an API root with this id, or else with this alias (the one lookup of the hub)."""
        found = self.collections.get(id_or_alias)
        if found is not None and found.api_root == root:
            return found
        return next((c for c in self.collections_of(root) if c.alias == id_or_alias), None)

    def read_filter(self, partner_pk: int, collection: CollectionInfo) -> policy.ReadFilter:
        key = (partner_pk, collection.uuid)
        if key not in self._filters:
            self._filters[key] = policy.compile_read(
                self.world,
                self.partners[partner_pk],
                collection.rules,
                self.restriction_sets,
                self.definitions.values(),
                [mk.sharing for mk in self.markings.values() if mk.sharing is not None],
            )
        return self._filters[key]


def rules_version(session: Session) -> int:
    return session.execute(select(m.HubState.rules_version).where(m.HubState.id == 1)).scalar_one()


def bump_rules(session: Session) -> None:
    """Invalidate every process's cached snapshot: the sharing configuration changed."""
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(rules_version=m.HubState.rules_version + 1))


def load_snapshot(session: Session) -> Snapshot:
    state = session.get(m.HubState, 1)
    assert state is not None, "database not initialised: run `cti-hub db upgrade`"
    partner_rows = {p.id: p for p in session.scalars(select(m.Partner))}
    partners = {p.id: _partner(p) for p in partner_rows.values()}
    members: dict[int, set[str]] = {}
    for group_id, partner_id in session.execute(select(m.TrustGroupMember.group_id, m.TrustGroupMember.partner_id)):
        members.setdefault(group_id, set()).add(partner_rows[partner_id].slug)
    groups = {
        g.slug: policy.TrustGroup(g.slug, frozenset(members.get(g.id, ())), frozenset(split_list(g.countries)))
        for g in session.scalars(select(m.TrustGroup))
    }
    roots = {
        r.slug: ApiRootInfo(r.id, r.slug, r.title, r.description, r.max_content_length)
        for r in session.scalars(select(m.ApiRoot))
    }
    root_slug = {r.pk: r.slug for r in roots.values()}
    collections = {c.uuid: _collection_info(c, root_slug[c.api_root_id]) for c in session.scalars(select(m.Collection))}
    markings = {mk.id: _marking_info(mk) for mk in session.scalars(select(m.Marking))}
    sets: dict[int, tuple[policy.SharingMarking, ...]] = {}
    keys: dict[str, int] = {}
    for rs in session.scalars(select(m.RestrictionSet)):
        ids = split_list(rs.marking_ids)
        # A marking missing from the table admits nobody: the set fails closed rather than widening.
        sets[rs.id] = tuple(_sharing_or_nobody(markings.get(i), i) for i in ids)
        keys[rs.marking_ids] = rs.id
    return Snapshot(
        rules_version=state.rules_version,
        hub_name=state.name,
        hub_contact=state.contact,
        hub_identity=state.identity_id,
        world=policy.World(groups),
        partners=partners,
        partner_rows=partner_rows,
        by_slug={p.slug: p.id for p in partner_rows.values()},
        roots=roots,
        collections=collections,
        markings=markings,
        restriction_sets=sets,
        restriction_keys=keys,
        identities={p.identity_id: p.slug for p in partner_rows.values()},
        definitions={
            i: mk.sharing
            for i, mk in markings.items()
            if mk.sharing is not None and not _published_by_hub(mk, partner_rows)
        },
    )


HUB_SLUG = "hub"  # the hub's own partner: its ready-made group markings are reference content for everyone


def _published_by_hub(info: MarkingInfo, partner_rows: dict[int, m.Partner]) -> bool:
    row = partner_rows.get(info.originator) if info.originator is not None else None
    return row is not None and row.slug == HUB_SLUG


def _sharing_or_nobody(info: MarkingInfo | None, marking_id: str) -> policy.SharingMarking:
    if info is not None and info.sharing is not None:
        return info.sharing
    return policy.SharingMarking(id=marking_id)


def _partner(p: m.Partner) -> policy.Partner:
    return policy.Partner(
        p.id,
        p.slug,
        p.country,
        TLP(p.clearance),
        p.active,
        p.kind,
        acs_organization=p.acs_organization,
        acs_shareability=frozenset(split_list(p.acs_shareability)),
        acs_entity=frozenset(split_list(p.acs_entity)),
    )


def _collection_info(c: m.Collection, root: str) -> CollectionInfo:
    rules = policy.Collection(
        id=c.uuid,
        max_tlp=TLP(c.max_tlp),
        default_tlp=TLP(c.default_tlp),
        types=frozenset(split_list(c.types)),
        readers=policy.Grants.parse(split_list(c.readers)),
        writers=policy.Grants.parse(split_list(c.writers)),
    )
    limits = formats.BlocklistLimits(c.blocklist_ipv4_prefix, c.blocklist_ipv6_prefix)
    return CollectionInfo(c.id, c.uuid, root, c.alias, c.title, c.description, c.is_reference, rules, limits)


def _marking_info(mk: m.Marking) -> MarkingInfo:
    sharing = None
    if mk.kind == "sharing":
        sharing = policy.SharingMarking(
            id=mk.id,
            partners=frozenset(split_list(mk.share_partners)),
            groups=frozenset(split_list(mk.share_groups)),
            countries=frozenset(split_list(mk.share_countries)),
            exclude_partners=frozenset(split_list(mk.exclude_partners)),
            no_federation=mk.no_federation,
        )
    elif mk.kind == "acs":
        sharing = acs_marking(mk.id, orjson.loads(mk.raw))
    return MarkingInfo(mk.id, mk.kind, TLP(mk.tlp) if mk.tlp is not None else None, mk.raw, sharing, mk.originator_id)


def acs_marking(marking_id: str, obj: dict) -> policy.SharingMarking:
    """The restriction an ACS 3.0 marking-definition places on the objects that carry it."""
    return policy.SharingMarking(id=marking_id, acs=acs.parse(obj["extensions"][acs.ACS_EXTENSION_ID]))


# --------------------------------------------------------------------- keys, audit


def find_key(session: Session, secret_hash: str) -> Any:
    """Return the key with that hash joined to its partner's slug and state (one indexed lookup), or None.

    The row also carries the current sharing-rules version, so that a request learns in this one round
    trip both who calls and whether its cached snapshot is still current.
    """
    return session.connection().execute(_find_key_statement(), {"secret_hash": secret_hash}).first()


@functools.cache
def _find_key_statement() -> Any:
    """Built once: every authenticated request runs it."""
    k, p = m.ApiKey.__table__.c, m.Partner.__table__.c
    version = select(m.HubState.rules_version).where(m.HubState.id == 1).scalar_subquery()
    return (
        select(
            k.id,
            k.key_id,
            k.partner_id,
            k.read_only,
            k.cidrs,
            k.expires_us,
            k.revoked_us,
            k.last_used_us,
            k.created_us,
            k.cert_sha256,
            k.cert_subject,
            p.slug,
            p.active,
            version.label("rules_version"),
        )
        .join_from(m.ApiKey.__table__, m.Partner.__table__, k.partner_id == p.id)
        .where(k.secret_hash == bindparam("secret_hash"))
    )


def touch_key(session: Session, key_pk: int, at_us: int) -> None:
    session.execute(update(m.ApiKey).where(m.ApiKey.id == key_pk).values(last_used_us=at_us))


def audit(
    session: Session, actor: str, action: str, target: str = "", detail: dict | None = None, source: str = ""
) -> None:
    """Append an event to the hash-chained audit trail, in the caller's transaction."""
    row = {
        "at_us": now_us(),
        "actor": actor[:100],
        "action": action,
        "target": target[:200],
        "source": source[:64],
        "detail": orjson.dumps(detail or {}).decode(),
    }
    prev = _lock_audit_head(session)
    digest = audit_hash(prev, row)
    event_id = session.execute(
        insert(m.AuditEvent).values(**row, prev_hash=prev, hash=digest).returning(m.AuditEvent.id)
    ).scalar_one()
    session.execute(update(m.AuditHead).where(m.AuditHead.id == 1).values(last_event_id=event_id, hash=digest))


def record_login_failure(session: Session, source: str, window_us: int) -> int:
    """Count a failed login from ``source``; return the failures in the current window."""
    now = now_us()
    row = session.get(m.LoginFailure, source)
    if row is None or now - row.window_us > window_us:
        if row is None:
            row = m.LoginFailure(source=source, window_us=now, count=0)
            session.add(row)
        row.window_us, row.count = now, 0
    row.count += 1
    return row.count


def login_failures(session: Session, source: str, window_us: int) -> tuple[int, int]:
    """Return (failures in the window, seconds until the window ends) for ``source``."""
    row = session.get(m.LoginFailure, source)
    if row is None:
        return 0, 0
    left = row.window_us + window_us - now_us()
    return (row.count, max(1, left // 1_000_000)) if left > 0 else (0, 0)


# --------------------------------------------------------------------- reads

V = m.ObjectVersion


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


VT = cast(Table, m.ObjectVersion.__table__)


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


def _visible(v: Any, shape: _Shape) -> ColumnElement[bool]:
    """The sharing rules (``policy.filter_admits``) as a SQL condition on one version row."""
    c = v.c
    if not shape.readable:
        return false()
    if shape.by_marking:
        admitted = _set_admitted(c.restriction_set_id, bindparam("admitted_markings", expanding=True))
        below_red = and_(c.tlp < int(TLP.RED), or_(c.restriction_set_id.is_(None), admitted))
    else:
        admitted = c.restriction_set_id.in_(bindparam("admitted", expanding=True))
        below_red = and_(c.tlp < int(TLP.RED), or_(c.restriction_set_id.is_(None), admitted))
    sharing = below_red
    if shape.red:
        if shape.by_marking:
            named = exists(
                select(RSM.c.marking_id).where(
                    RSM.c.restriction_set_id == c.restriction_set_id,
                    RSM.c.marking_id.in_(bindparam("red_markings", expanding=True)),
                )
            )
            at_red = and_(c.tlp == int(TLP.RED), c.restriction_set_id.is_not(None), admitted, named)
        else:
            at_red = and_(c.tlp == int(TLP.RED), c.restriction_set_id.in_(bindparam("red_sets", expanding=True)))
        sharing = or_(below_red, at_red)
    content = and_(
        c.tlp <= bindparam("max_tlp"),
        c.unknown_markings.is_(False),
        c.quarantined.is_(False),
        c.type.in_(bindparam("collection_types", expanding=True)) if shape.typed_collection else true(),
        sharing,
        _definition_shown(c, bindparam("shown_markings", expanding=True)),
    )
    return or_(c.originator_id == bindparam("originator"), content)


MK, PT = cast(Table, m.Marking.__table__), cast(Table, m.Partner.__table__)
RSM = cast(Table, m.RestrictionSetMarking.__table__)


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
    in_collection = _of_collection(c.collection_id, collection) if shape.ids else c.collection_id == collection
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


def _bind(q: VersionQuery, columns: Sequence[str]) -> tuple[_Shape, dict[str, Any]]:
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
        f.admitted_markings is not None,
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


def _visible_as(v: Any, f: policy.ReadFilter, originator_pk: int) -> ColumnElement[bool]:
    """``_visible`` with the values inlined, for the rare statements that compare two read filters."""
    c = v.c
    if not f.readable:
        return false()
    below_red = and_(
        c.tlp < int(TLP.RED), or_(c.restriction_set_id.is_(None), c.restriction_set_id.in_(sorted(f.admitted_sets)))
    )
    at_red = and_(c.tlp == int(TLP.RED), c.restriction_set_id.in_(sorted(f.red_sets)))
    content = and_(
        c.tlp <= int(f.max_tlp),
        c.unknown_markings.is_(False),
        c.quarantined.is_(False),
        c.type.in_(sorted(f.types)) if f.types else true(),
        or_(below_red, at_red) if f.max_tlp >= TLP.RED else below_red,
        _definition_shown(c, sorted(f.shown_markings or ())),
    )
    return or_(c.originator_id == originator_pk, content)


def newly_visible(
    session: Session, collection_pk: int, partner_pk: int, now: policy.ReadFilter, before: policy.ReadFilter | None
) -> set[int]:
    """Return the versions of a collection a partner sees under ``now`` but did not under ``before``."""
    condition = _visible_as(VT, now, partner_pk)
    if before is not None:
        condition = and_(condition, ~_visible_as(VT, before, partner_pk))
    stmt = select(VT.c.pk).where(VT.c.collection_id == collection_pk, condition)
    return set(session.connection().execute(stmt).scalars())


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
    first = add_dated(session, moves, "b_at")
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
            _of_collection(VT.c.collection_id, collection_pk),
            _stix_id_among(session, ids, VT.c.stix_id),
            VT.c.newer_exists != has_newer,
        )  # rewrite only the rows that change
        .values(newer_exists=has_newer)
    )


# --------------------------------------------------------------------- writes


def lock_clock(session: Session) -> int:
    """Take the hub-wide writer lock and return the last ``date_added`` handed out."""
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=m.HubState.clock_us))
    return session.execute(select(m.HubState.clock_us).where(m.HubState.id == 1)).scalar_one()


def set_clock(session: Session, value: int) -> None:
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=value))


# The largest gap between two consecutive hub-clock values is 2**GAP_BITS microseconds.
GAP_BITS = 6


def add_dated(session: Session, rows: list[dict], key: str = "date_added") -> int:
    """Give each row the next hub-clock value under ``key``, in order; return the first value given.

    Takes the writer lock. Values are unique and increasing, and consecutive ones lie 1 to 64 µs
    apart at random, so the gap between two values a partner sees does not tell it how many
    values were handed out in between to objects it cannot see (SECURITY.md "Side channels").
    """
    clock = lock_clock(session)
    if not rows:
        return clock
    at = max(now_us(), clock)
    mask = (1 << GAP_BITS) - 1
    for row, noise in zip(rows, os.urandom(len(rows)), strict=True):
        at += (noise & mask) + 1
        row[key] = at
    set_clock(session, at)
    return rows[0][key]


def _stix_id_among(session: Session, stix_ids: Iterable[str], column: Any = V.stix_id) -> ColumnElement[bool]:
    """``stix_id IN (...)`` with the whole list bound as one parameter (a JSON text or an array).

    An expanding IN list costs SQLAlchemy work per value and a new statement per list length; one
    parameter keeps the statement cached (and prepared on PostgreSQL) however many ids an envelope has.
    """
    ids = sorted(set(stix_ids))
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("stix_ids", ids, type_=postgresql.ARRAY(String)))
    listed = func.json_each(bindparam("stix_ids", orjson.dumps(ids).decode())).table_valued("value")
    return column.in_(select(listed.c.value))


def _of_collection(column: Any, collection_pk: Any) -> ColumnElement[bool]:
    """``collection_id = pk`` for statements that look objects up by id: "+ 0" keeps the planner on the id.

    A collection that filled since the last ANALYZE looks empty to PostgreSQL's planner, which then
    walks the whole collection through a collection index (measured: 50 ms instead of 1 ms for an
    envelope's lookups). The ids are always the selective part.
    """
    return column + 0 == collection_pk


OO = cast(Table, m.ObjectOrigin.__table__)


def stix_key(stix_id: str) -> str:
    """The key an id's originator is recorded under: ids differing only in case are one id."""
    return stix_id.lower()


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
            select(OO.c.stix_key, OO.c.originator_id).where(_stix_id_among(session, keys, OO.c.stix_key))
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
    ).where(_stix_id_among(session, {stix_key(i) for i in ids}, func.lower(V.stix_id)))
    raws: dict[tuple[str, int, int], str] = {}
    first: dict[tuple[str, int], tuple[int, int]] = {}
    for stix_id, version_us, originator, quarantined, tlp, added, raw in session.execute(stmt):
        if raw is not None:
            raws[(stix_id, version_us, originator if quarantined else 0)] = raw
        key = (stix_key(stix_id), version_us)
        if not quarantined and added < first.get(key, (added + 1, 0))[0]:
            first[key] = (added, tlp)
    archived = select(AT.c.stix_id, AT.c.version_us, AT.c.originator_id, AT.c.quarantined, AT.c.raw).where(
        _of_collection(AT.c.collection_id, collection_pk), _stix_id_among(session, ids, AT.c.stix_id)
    )
    for stix_id, version_us, originator, quarantined, raw in session.execute(archived):
        # An archived version is still this collection's: publishing it again is a duplicate, not new.
        raws.setdefault((stix_id, version_us, originator if quarantined else 0), raw)
    return Publication(origins, raws, {k: tlp for k, (_, tlp) in first.items()})


def register_origins(session: Session, rows: Iterable[dict]) -> None:
    """Record the originator of every id among ``rows`` that has none yet (the first publication wins)."""
    new: dict[str, dict] = {}
    for row in rows:
        if not row.get("quarantined"):
            key = stix_key(row["stix_id"])
            new.setdefault(
                key, {"stix_key": key, "originator_id": row["originator_id"], "created_us": row["date_added"]}
            )
    if not new:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(OO).on_conflict_do_nothing(index_elements=["stix_key"]), list(new.values()))


def stored_versions(session: Session, collection_pk: int, stix_ids: Iterable[str]) -> dict[tuple[str, int], str]:
    """Return the raw JSON of every stored or archived (id, version) among ``stix_ids`` in a collection."""
    ids = sorted(set(stix_ids))
    stmt = select(V.stix_id, V.version_us, V.raw).where(
        _of_collection(V.collection_id, collection_pk), _stix_id_among(session, ids)
    )
    out = {(stix_id, version_us): raw for stix_id, version_us, raw in session.execute(stmt)}
    _add_archived(session, collection_pk, ids, out)
    return out


def _add_archived(session: Session, collection_pk: int, ids: list[str], out: dict[tuple[str, int], str]) -> None:
    # An archived version is still this collection's: publishing it again is a duplicate, not new.
    archived = select(AT.c.stix_id, AT.c.version_us, AT.c.raw).where(
        _of_collection(AT.c.collection_id, collection_pk), _stix_id_among(session, ids, AT.c.stix_id)
    )
    for stix_id, version_us, raw in session.execute(archived):
        out.setdefault((stix_id, version_us), raw)


def insert_versions(session: Session, rows: list[dict]) -> None:
    """Insert version rows (all with the same keys) in one executemany straight to the driver.

    The values are plain ints, strings, booleans and None, which both drivers bind as they are, so
    the statement is compiled once per dialect and column set and no per-row processing is done.
    """
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        # COPY: one statement streams the whole envelope (an INSERT per row is a server round of work each).
        keys = tuple(rows[0])
        columns = ", ".join(VT.c[key].name for key in keys)  # the table's own column names, never input
        driver = conn.connection.driver_connection
        assert driver is not None, "an open connection has its driver connection"
        with driver.cursor().copy(f"COPY {m.ObjectVersion.__tablename__} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[key] for key in keys))
        return
    sql, names = _insert_sql(conn.dialect, tuple(rows[0]))
    params = [tuple(row[n] for n in names) for row in rows] if names else rows
    conn.exec_driver_sql(sql, params)


@functools.lru_cache(maxsize=8)
def _insert_sql(dialect: Any, keys: tuple[str, ...], table: Table = VT) -> tuple[str, tuple[str, ...] | None]:
    """The INSERT for these columns, and the order of its parameters when the dialect's are positional."""
    compiled = table.insert().compile(dialect=dialect, column_keys=list(keys), for_executemany=True)
    return compiled.string, tuple(compiled.positiontup or ()) if compiled.positional else None


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


# --------------------------------------------------------------------- audit chain

AUDIT_FIELDS = ("at_us", "actor", "action", "target", "source", "detail")


def audit_hash(prev_hash: str, row: dict) -> str:
    """Return sha256 over the previous event's hash and this event's canonical JSON (sorted keys)."""
    import hashlib

    body = orjson.dumps({k: row[k] for k in AUDIT_FIELDS}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def _lock_audit_head(session: Session) -> str:
    """Take the hub-wide writer lock (the clock row) and return the hash at the head of the chain.

    The same row ``lock_clock`` and ``bump_rules`` lock, so every writer queues on one lock, in
    one order: two writers can neither interleave their links nor deadlock each other.
    """
    session.execute(update(m.HubState).where(m.HubState.id == 1).values(clock_us=m.HubState.clock_us))
    head = session.execute(select(m.AuditHead.hash).where(m.AuditHead.id == 1)).scalar_one_or_none()
    if head is None:
        session.execute(insert(m.AuditHead).values(id=1, last_event_id=0, hash=""))
        head = ""
    return head


def audit_head(session: Session) -> tuple[int, str]:
    """Return (id, hash) of the newest audit event as the chain head records it."""
    row = session.execute(select(m.AuditHead.last_event_id, m.AuditHead.hash).where(m.AuditHead.id == 1)).first()
    return (row[0], row[1]) if row is not None else (0, "")


def audit_events(
    session: Session,
    *,
    after_id: int = 0,
    limit: int = 1000,
    action: str | None = None,
    actor: str | None = None,
    since_us: int | None = None,
) -> list[m.AuditEvent]:
    """Return audit events in chain order (id), optionally filtered."""
    stmt = select(m.AuditEvent).where(m.AuditEvent.id > after_id)
    if action:
        stmt = stmt.where(m.AuditEvent.action == action)
    if actor:
        stmt = stmt.where(m.AuditEvent.actor == actor)
    if since_us is not None:
        stmt = stmt.where(m.AuditEvent.at_us >= since_us)
    return list(session.scalars(stmt.order_by(m.AuditEvent.id).limit(limit)))


# --------------------------------------------------------------------- delivery ledger


def append_deliveries(engine: Engine, rows: list[dict], view: dict | None = None) -> None:
    """Append deliveries in one short transaction that does not wait for the disk.

    The ledger is written on every page served, before the page leaves, so this is the cheapest write
    the engine offers: on PostgreSQL the whole transaction (setting, rows, commit) goes out as one
    pipeline, a single exchange with the server; on SQLite one Core transaction at ``synchronous=NORMAL``.
    With ``view``, the partner's read filter for its rules version is saved too (once; repeats are ignored).
    """
    if engine.dialect.name == "postgresql":
        _append_deliveries_pg(engine, rows, view)
        return
    with engine.connect() as conn:
        conn = conn.execution_options(hub_write=True, hub_relaxed=True)
        with conn.begin():
            if view is not None:
                conn.execute(_insert_view(conn.dialect.name), view)
            conn.execute(_INSERT_DELIVERY, rows)


def _append_deliveries_pg(engine: Engine, rows: list[dict], view: dict | None) -> None:
    import psycopg

    delivery_sql, _ = _insert_sql(engine.dialect, tuple(rows[0]), DT)  # the driver's named parameters
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None, "an open connection has its driver connection"
        try:
            with raw.pipeline():
                raw.execute("SET LOCAL synchronous_commit TO OFF")  # opens the transaction
                if view is not None:
                    raw.execute(str(_insert_view("postgresql").compile(dialect=engine.dialect)), view)
                raw.cursor().executemany(delivery_sql, rows)
                raw.commit()
        except psycopg.Error as error:
            # Raised as SQLAlchemy raises driver errors, so callers (and the 503 handler) see one kind.
            broken = raw.broken or raw.closed
            if broken:
                conn.invalidate()
            raise exc.DBAPIError.instance(
                "INSERT INTO deliveries", None, error, psycopg.Error, connection_invalidated=broken
            ) from error


DT = cast(Table, m.Delivery.__table__)
_INSERT_DELIVERY = insert(DT)  # built once: one row per page served


@functools.cache
def _insert_view(dialect_name: str) -> Any:
    """INSERT of a partner's saved read filter that ignores a repeat (another worker saved it first)."""
    from sqlalchemy.dialects import sqlite

    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(m.DeliveryView.__table__).on_conflict_do_nothing()


def deliveries_covering(
    session: Session, collection_pk: int, date_added: int, *, before_us: int | None = None
) -> list[m.Delivery]:
    """Return the deliveries of a collection whose ``date_added`` range covers one value, oldest first.

    ``before_us`` keeps only deliveries made before then (while a re-dated version still held the value).
    """
    stmt = select(m.Delivery).where(
        m.Delivery.collection_id == collection_pk,
        m.Delivery.first_added <= date_added,
        m.Delivery.last_added >= date_added,
    )
    if before_us is not None:
        stmt = stmt.where(m.Delivery.at_us < before_us)
    return list(session.scalars(stmt.order_by(m.Delivery.at_us)))


def former_dates(session: Session, version_pks: Iterable[int]) -> dict[int, list[tuple[int, int]]]:
    """The (date_added, replaced_us) pairs each version held before rule changes re-dated it."""
    out: dict[int, list[tuple[int, int]]] = {}
    pks = list(version_pks)
    for start in range(0, len(pks), 500):
        stmt = select(m.VersionRedate).where(m.VersionRedate.version_pk.in_(pks[start : start + 500]))
        for r in session.scalars(stmt):
            out.setdefault(r.version_pk, []).append((r.date_added, r.replaced_us))
    return out


def delivery_view(session: Session, partner_pk: int, collection_pk: int, rules_version: int) -> str | None:
    return session.execute(
        select(m.DeliveryView.read_filter).where(
            m.DeliveryView.partner_id == partner_pk,
            m.DeliveryView.collection_id == collection_pk,
            m.DeliveryView.rules_version == rules_version,
        )
    ).scalar_one_or_none()


def versions_by_id(session: Session, stix_id: str) -> list[m.ObjectVersion]:
    """Every stored version of an object, in every collection."""
    return list(session.scalars(select(V).where(V.stix_id == stix_id).order_by(V.collection_id, V.version_us)))


# --------------------------------------------------------------------- retention

AT = cast(Table, m.ArchivedVersion.__table__)
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


# --------------------------------------------------------------------- withdrawals and recalls

WT = cast(Table, m.Withdrawal.__table__)


def removed_from_view(
    session: Session, collection_pk: int, partner_pk: int, now: policy.ReadFilter, before: policy.ReadFilter
) -> list:
    """Return the versions a partner saw under ``before`` of objects it sees no version of under ``now``."""
    other = VT.alias()
    still = exists(
        select(other.c.pk).where(
            other.c.collection_id == collection_pk, other.c.stix_id == VT.c.stix_id, _visible_as(other, now, partner_pk)
        )
    )
    stmt = select(VT.c.pk, VT.c.stix_id, VT.c.type, VT.c.version_us, VT.c.tlp, VT.c.originator_id, VT.c.raw).where(
        VT.c.collection_id == collection_pk, _visible_as(VT, before, partner_pk), ~still
    )
    return list(session.connection().execute(stmt).all())


def visible_versions(session: Session, collection_pk: int, stix_id: str, partner_pk: int, f: policy.ReadFilter) -> list:
    """Return every version of one object a partner's read filter admits in a collection."""
    stmt = select(VT.c.pk, VT.c.stix_id, VT.c.type, VT.c.version_us, VT.c.tlp, VT.c.originator_id, VT.c.raw).where(
        VT.c.collection_id == collection_pk, VT.c.stix_id == stix_id, _visible_as(VT, f, partner_pk)
    )
    return list(session.connection().execute(stmt).all())


def add_withdrawals(session: Session, rows: list[dict]) -> int:
    """Insert withdrawal rows with positions from the hub clock (after every ``date_added`` handed out)."""
    if not rows:
        return 0
    add_dated(session, rows, "position")
    session.connection().execute(WT.insert(), rows)
    return len(rows)


def withdrawals_for(session: Session, partner_pk: int, collection_pk: int, after: int | None, upto: int) -> list:
    """Return a partner's withdrawals in a collection with ``after`` < position <= ``upto``, in order."""
    c = WT.c
    stmt = select(
        c.id,
        c.position,
        c.at_us,
        c.stix_id,
        c.object_type,
        c.reason,
        c.tlp,
        c.originator_id,
        c.summary,
        c.recall_id,
        c.served_us,
    ).where(c.partner_id == partner_pk, c.collection_id == collection_pk, c.position <= upto)
    if after is not None:
        stmt = stmt.where(c.position > after)
    return list(session.connection().execute(stmt.order_by(c.position)).all())


def mark_withdrawals_served(
    session: Session, partner_pk: int, ids: Sequence[int], recall_ids: Iterable[int], at_us: int
) -> None:
    """Record the first time a partner's feed listed these withdrawals (and the recalls they belong to)."""
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        session.execute(
            update(m.Withdrawal)
            .where(m.Withdrawal.id.in_(chunk), m.Withdrawal.served_us.is_(None))
            .values(served_us=at_us)
        )
    recalls = sorted(set(recall_ids))
    if recalls:
        session.execute(
            update(m.RecallNotice)
            .where(
                m.RecallNotice.partner_id == partner_pk,
                m.RecallNotice.recall_id.in_(recalls),
                m.RecallNotice.served_us.is_(None),
            )
            .values(served_us=at_us)
        )


def save_recall(
    session: Session, stix_id: str, actor: str, reason: str, at_us: int, notices: Sequence[tuple[int, str]]
) -> int:
    """Store a recall and one notice per recipient (partner pk, slug); return the recall's id."""
    recall_id = session.execute(
        insert(m.Recall).values(stix_id=stix_id, actor=actor[:100], reason=reason, at_us=at_us).returning(m.Recall.id)
    ).scalar_one()
    if notices:
        session.execute(
            insert(m.RecallNotice),
            [
                {"recall_id": recall_id, "partner_id": pk, "partner_slug": slug, "notified_us": at_us}
                for pk, slug in notices
            ],
        )
    return recall_id


def recalls_of(session: Session, stix_id: str) -> list[tuple[m.Recall, list[m.RecallNotice]]]:
    """Every recall of an object, newest first, with its notices by partner."""
    recalls = list(
        session.scalars(
            select(m.Recall).where(m.Recall.stix_id == stix_id).order_by(m.Recall.at_us.desc(), m.Recall.id.desc())
        )
    )
    notices: dict[int, list[m.RecallNotice]] = {r.id: [] for r in recalls}
    if recalls:
        for n in session.scalars(
            select(m.RecallNotice)
            .where(m.RecallNotice.recall_id.in_(list(notices)))
            .order_by(m.RecallNotice.partner_slug)
        ):
            notices[n.recall_id].append(n)
    return [(r, notices[r.id]) for r in recalls]


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
