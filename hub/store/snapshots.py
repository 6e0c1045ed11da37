"""The sharing configuration at one ``rules_version``: partners, groups, collections and markings.

Loaded once per rules version and shared by every request (``Hub.snapshot``); the read filters the
store's statements take are compiled from it (``Snapshot.read_filter``). Changing the configuration
calls ``bump_rules``, which makes every process load a new snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub import acs, formats, policy
from hub import models as m
from hub.models import split_list
from hub.policy import TLP


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
    # Distinct partners' false-positive reports that flag an indicator (0: never), and whether that withdraws it.
    false_positive_threshold: int = 0
    false_positive_withdraw: bool = False

    @property
    def is_feedback(self) -> bool:
        return self.rules.feedback


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

    def feedback_collection(self, root: str) -> CollectionInfo | None:
        """The API root's feedback collection, if it has one."""
        return next((c for c in self.collections_of(root) if c.is_feedback), None)

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
        feedback=c.is_feedback,
    )
    limits = formats.BlocklistLimits(c.blocklist_ipv4_prefix, c.blocklist_ipv6_prefix, c.blocklist_allow_warninglisted)
    return CollectionInfo(
        c.id,
        c.uuid,
        root,
        c.alias,
        c.title,
        c.description,
        c.is_reference,
        rules,
        limits,
        c.false_positive_threshold,
        c.false_positive_withdraw,
    )


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
