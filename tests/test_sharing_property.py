"""No leaks, no losses: over TAXII every partner receives exactly what the sharing rules release to it.

A world (partners, trust groups, collections, sharing markings, object versions) is generated, published
through ``ingest.ingest_envelope`` into a fresh database, and then every partner reads every collection
on every read path. The expected view is computed from the generated model with the pure rules
(``policy.can_read``) and TAXII's version semantics; the hub's own snapshot is never consulted.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from hub import acs, feedback, ingest, models, policy, reference, stix
from hub.ids import FEEDBACK_SHARE_ID
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import snapshots
from tests import factories as f
from tests.conftest import fresh_database_url

ROOT = "dprk"
MARKINGS = "markings"  # the open collection the sharing markings are published in
FEEDBACK = "feedback"  # the API root's feedback collection, read and written by everyone
# TLP 2.0, TLP 1.0 and OpenCTI AMBER+STRICT ids, the middle levels first (drawn more often)
TLP_REFS: dict[str, TLP] = dict(sorted(stix.TLP_MARKING_IDS.items(), key=lambda item: abs(item[1] - TLP.AMBER)))
TLP2 = {level: marking["id"] for level, marking in stix.TLP2_MARKINGS.items()}
TLP1 = {marking["name"]: marking["id"] for marking in stix.TLP1_MARKINGS.values()}  # TLP:WHITE, ... TLP:RED
TLP1_RED = TLP1["TLP:RED"]
OPENCTI_AMBER_STRICT = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"
UNDEFINED = "marking-definition--00000000-0000-4000-8000-000000000000"
ACTIVE, INACTIVE, SUSPENDED_LATER = "active", "inactive", "suspended later"

# --------------------------------------------------------------------- the model


@dataclass(frozen=True)
class PartnerSpec:
    slug: str
    country: str
    clearance: TLP
    state: str = ACTIVE  # ACTIVE, INACTIVE (from the start) or SUSPENDED_LATER (after publishing)
    organization: str = ""  # the partner's ACS 3.0 organisation token


@dataclass(frozen=True)
class GroupSpec:
    slug: str
    members: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()


@dataclass(frozen=True)
class CollectionSpec:
    alias: str
    max_tlp: TLP = TLP.RED
    default_tlp: TLP = TLP.GREEN
    types: tuple[str, ...] = ()
    readers: tuple[str, ...] = ("*",)
    writers: tuple[str, ...] = ("*",)
    later_max_tlp: TLP | None = None  # rules tightened after publishing
    later_types: tuple[str, ...] | None = None
    feedback: bool = False  # the API root's feedback collection (policy step 9)


@dataclass(frozen=True)
class MarkingSpec:
    id: str
    owner: str
    partners: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    countries: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    acs: str = ""  # an ACS 3.0 marking instead: its extension as JSON

    def definition(self) -> dict:
        """The marking-definition its owner posts."""
        if not self.acs:
            return f.sharing_marking(
                self.id, partners=self.partners, groups=self.groups, countries=self.countries, exclude=self.exclude
            )
        return {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": self.id,
            "created": "2021-08-14T01:08:09.163015Z",
            "extensions": {acs.ACS_EXTENSION_ID: orjson.loads(self.acs)},
        }


@dataclass(frozen=True)
class VersionSpec:
    publisher: str
    tlp_refs: tuple[str, ...] = ()
    sharing: tuple[str, ...] = ()


@dataclass(frozen=True)
class ObjectSpec:
    n: int
    kind: str  # "indicator" or "malware"
    alias: str
    versions: tuple[VersionSpec, ...]

    @property
    def id(self) -> str:
        return f"{self.kind}--{uuid.uuid5(uuid.NAMESPACE_OID, f'{self.kind}/{self.n}')}"


@dataclass(frozen=True)
class RepostSpec:
    """A partner posts version ``rank`` of object ``n`` as published into a collection, maybe spelled otherwise."""

    n: int
    rank: int
    poster: str
    alias: str
    upper: bool = False  # the id's UUID in upper case: the same id to every originator rule


@dataclass(frozen=True)
class FeedbackSpec:
    """A sighting or false-positive report posted into the feedback collection.

    ``target`` is the ``n`` of an object published by one partner alone (so it has no copies under its
    id), which the reporter may or may not see, or None for an id the hub never held.
    """

    n: int
    reporter: str
    target: int | None
    kind: str = "sighting"  # or "false_positive" (an opinion of strongly-disagree)
    tlp_refs: tuple[str, ...] = ()
    share: bool = False  # the hub's feedback-share marking: release it in full beside the object
    count: int = 1

    @property
    def id(self) -> str:
        kind = "sighting" if self.kind == "sighting" else "opinion"
        return f"{kind}--{uuid.uuid5(uuid.NAMESPACE_OID, f'feedback/{self.n}')}"


@dataclass(frozen=True)
class WorldSpec:
    partners: tuple[PartnerSpec, ...]
    groups: tuple[GroupSpec, ...]
    collections: tuple[CollectionSpec, ...]
    markings: tuple[MarkingSpec, ...]
    objects: tuple[ObjectSpec, ...]
    page_limit: int = 3
    marking_readers: tuple[str, ...] = ("*",)  # who may read the markings collection
    reposts: tuple[RepostSpec, ...] = ()  # after the objects: copies posted by their owners and by others
    feedback: tuple[FeedbackSpec, ...] = ()  # after the reposts: sightings and false-positive reports

    def partner(self, slug: str) -> PartnerSpec:
        return next(p for p in self.partners if p.slug == slug)

    def all_collections(self) -> tuple[CollectionSpec, ...]:
        return (
            CollectionSpec(MARKINGS, default_tlp=TLP.CLEAR, readers=self.marking_readers),
            *self.collections,
            CollectionSpec(FEEDBACK, default_tlp=TLP.GREEN, feedback=True),
        )


def policy_world(spec: WorldSpec) -> policy.World:
    return policy.World(
        {g.slug: policy.TrustGroup(g.slug, frozenset(g.members), frozenset(g.countries)) for g in spec.groups}
    )


def policy_partner(p: PartnerSpec, *, reading: bool) -> policy.Partner:
    active = p.state == ACTIVE or (p.state == SUSPENDED_LATER and not reading)
    return policy.Partner(0, p.slug, p.country, p.clearance, active, acs_organization=p.organization)


def policy_collection(c: CollectionSpec, *, reading: bool) -> policy.Collection:
    max_tlp = c.later_max_tlp if reading and c.later_max_tlp is not None else c.max_tlp
    types = c.later_types if reading and c.later_types is not None else c.types
    return policy.Collection(
        c.alias,
        max_tlp,
        c.default_tlp,
        frozenset(types),
        policy.Grants.parse(c.readers),
        policy.Grants.parse(c.writers),
        c.feedback,
    )


def policy_marking(m: MarkingSpec) -> policy.SharingMarking:
    if m.acs:
        return policy.SharingMarking(m.id, acs=acs.parse(orjson.loads(m.acs)))
    return policy.SharingMarking(
        m.id, frozenset(m.partners), frozenset(m.groups), frozenset(m.countries), frozenset(m.exclude)
    )


@dataclass(frozen=True)
class Stored:
    """One object version the hub accepted, with the facts the model derives for it."""

    id: str
    version: str
    rank: int
    alias: str
    facts: policy.ObjectFacts
    raw: dict


@dataclass
class Ledger:
    """What the hub accepted while the world was published."""

    stored: list[Stored] = field(default_factory=list)
    markings: dict[str, policy.SharingMarking] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    feedback: list[tuple[FeedbackSpec, policy.ObjectFacts, str]] = field(default_factory=list)  # and its target


# --------------------------------------------------------------------- generated worlds

SLUGS = ("krcert", "cisa", "singcert", "mycert", "vncert", "jpcert")
COUNTRIES = ("KR", "US", "SG", "MY")
GROUP_SLUGS = ("rokus", "asean", "five")
ORGANIZATIONS = ("", "USA.DHS.CISA", "USA.USG", "KOR.KISA", "SGP.CSA")
NATIONALITIES = ("USA", "KOR", "SGP", "MYS", "JPN")
ALIASES = ("alpha", "bravo", "charlie")
high_tlps = st.sampled_from([TLP.RED, TLP.AMBER_STRICT, TLP.AMBER, TLP.RED, TLP.GREEN, TLP.RED, TLP.CLEAR])


def mostly(common, *rare):
    """Draw ``common`` about three times in four, else one of ``rare``."""
    return st.sampled_from([common] * (3 * len(rare)) + list(rare))


def subsets(values: Iterable[str], max_size: int = 2) -> st.SearchStrategy[tuple[str, ...]]:
    values = list(values)
    return st.lists(st.sampled_from(values), unique=True, max_size=max_size).map(tuple) if values else st.just(())


@st.composite
def partner_specs(draw) -> tuple[PartnerSpec, ...]:
    count = draw(st.integers(3, 6))
    return tuple(
        PartnerSpec(
            slug,
            draw(st.sampled_from(COUNTRIES)),
            draw(high_tlps),
            draw(mostly(ACTIVE, INACTIVE, SUSPENDED_LATER)),
            draw(st.sampled_from(ORGANIZATIONS)),
        )
        for slug in SLUGS[:count]
    )


@st.composite
def group_specs(draw, slugs: tuple[str, ...]) -> tuple[GroupSpec, ...]:
    count = draw(st.integers(1, 3))
    return tuple(GroupSpec(g, draw(subsets(slugs, 3)), draw(subsets(COUNTRIES))) for g in GROUP_SLUGS[:count])


@st.composite
def collection_specs(draw, slugs: tuple[str, ...], groups: tuple[str, ...]) -> tuple[CollectionSpec, ...]:
    grants = subsets(["*", *(f"group:{g}" for g in groups), *(f"partner:{p}" for p in slugs)], 3)
    out = []
    for alias in ALIASES[: draw(st.integers(1, 3))]:
        max_tlp = draw(high_tlps)
        default_tlp = draw(st.sampled_from([t for t in reversed(TLP) if t <= max_tlp]))
        types = draw(mostly((), ("indicator",), ("indicator", "malware")))
        readers = ("*",) if draw(st.booleans()) else draw(grants)
        writers = ("*",) if draw(mostly(True, False)) else draw(grants)
        out.append(
            CollectionSpec(
                alias,
                max_tlp,
                default_tlp,
                types,
                readers,
                writers,
                draw(st.sampled_from([None] * 6 + [TLP.GREEN, TLP.AMBER])),
                draw(st.sampled_from([None] * 7 + [("malware",)])),
            )
        )
    return tuple(out)


@st.composite
def acs_extension(draw) -> str:
    """An unclassified ACS 3.0 marking: access privileges by nationality and organisation, permit or deny."""
    privileges = []
    for _ in range(draw(st.sampled_from([1, 0, 2]))):
        scope = {
            "permitted_nationalities": list(draw(mostly(("ALL",), *((n,) for n in NATIONALITIES), ("USA", "KOR"))))
        }
        if draw(mostly(False, True)):
            scope["permitted_organizations"] = list(draw(st.sampled_from([("ALL",), ("USA",), ("KOR.KISA",)])))
        privileges.append(
            {
                "privilege_action": draw(st.sampled_from(["CISAUSES", "DSPLY"])),
                "privilege_scope": scope,
                "rule_effect": draw(mostly("permit", "deny")),
            }
        )
    privdefault, sharedefault = draw(st.sampled_from(["deny", "permit"])), draw(st.sampled_from(["deny", "permit"]))
    ext: dict = {
        "extension_type": "property-extension",
        "identifier": f"isa:guide.19001.ACS3-{uuid.UUID(int=draw(st.integers(0, 2**64)))}",
        "create_date_time": "2021-08-14T01:08:08.432065Z",
        "responsible_entity_custodian": "USA.DHS.US-CERT",
        "responsible_entity_originator": "USA.DHS.US-CERT",
        "authority_reference": ["urn:isa:authority:misa"],
        "policy_reference": f"urn:isa:policy:acs:ns:v3.0?privdefault={privdefault}&sharedefault={sharedefault}",
        "control_set": {"classification": "U", "formal_determination": ["FOUO", "AIS"]},
    }
    if privileges:
        ext["access_privilege"] = privileges
    return orjson.dumps(ext).decode()


@st.composite
def marking_specs(draw, slugs: tuple[str, ...], groups: tuple[str, ...]) -> tuple[MarkingSpec, ...]:
    return tuple(
        MarkingSpec(
            f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, f'marking/{i}')}",
            draw(st.sampled_from(slugs)),
            draw(subsets(slugs, 3)),
            draw(subsets(groups)),
            draw(subsets((*COUNTRIES, "JP"))),
            draw(subsets(slugs, 1)),
            draw(acs_extension()) if draw(st.booleans()) else "",
        )
        for i in range(draw(st.sampled_from([2, 3, 4, 1, 0])))
    )


@st.composite
def version_specs(draw, owner: str, slugs: tuple[str, ...], markings: tuple[MarkingSpec, ...]) -> VersionSpec:
    """Mostly the owner's versions; some TLP:RED ones naming recipients; now and then an undefined marking."""
    publisher = draw(mostly(owner, *slugs))
    naming = [m.id for m in markings if m.partners]
    if naming and draw(mostly(False, True)):
        named = draw(st.sampled_from(naming))
        others = draw(subsets([m.id for m in markings if m.id != named], 1))
        return VersionSpec(publisher, draw(st.sampled_from([(TLP2[TLP.RED],), (TLP1_RED,)])), (named, *others))
    refs = st.sampled_from([*(m.id for m in markings), UNDEFINED] if markings else [UNDEFINED])
    sharing = draw(st.lists(refs, unique=True, min_size=1, max_size=2).map(tuple))
    return VersionSpec(
        publisher,
        draw(subsets(TLP_REFS)),
        draw(st.sampled_from([sharing, (), ()] if markings else [(), (), (), sharing])),
    )


@st.composite
def object_specs(draw, slugs, aliases, markings) -> tuple[ObjectSpec, ...]:
    out = []
    for n in range(draw(st.integers(5, 30))):
        owner = draw(st.sampled_from(slugs))
        count = draw(st.sampled_from([1, 1, 2, 3]))
        versions = tuple(draw(version_specs(owner, slugs, markings)) for _ in range(count))
        out.append(ObjectSpec(n, draw(mostly("indicator", "malware")), draw(st.sampled_from(aliases)), versions))
    return tuple(out)


@st.composite
def world_specs(draw) -> WorldSpec:
    partners = draw(partner_specs())
    slugs = tuple(p.slug for p in partners)
    groups = draw(group_specs(slugs))
    group_slugs = tuple(g.slug for g in groups)
    collections = draw(collection_specs(slugs, group_slugs))
    markings = draw(marking_specs(slugs, group_slugs))
    objects = draw(object_specs(slugs, tuple(c.alias for c in collections), markings))
    # Now and then the markings are readable by some partners only: to the others they do not exist.
    grants = subsets([*(f"group:{g}" for g in group_slugs), *(f"partner:{p}" for p in slugs)], 3)
    marking_readers = draw(mostly(("*",), draw(grants)))
    reposts = draw(repost_specs(objects, slugs, tuple(c.alias for c in collections)))
    feedback = draw(feedback_specs(objects, reposts, partners, groups, collections))
    return WorldSpec(
        partners, groups, collections, markings, objects, draw(st.integers(2, 5)), marking_readers, reposts, feedback
    )


def single_publisher(objects: Iterable[ObjectSpec], reposts: Iterable[RepostSpec]) -> list[ObjectSpec]:
    """Objects whose every version one partner publishes and nobody reposts: no copies share their id."""
    reposted = {r.n for r in reposts}
    return [o for o in objects if o.n not in reposted and len({v.publisher for v in o.versions}) == 1]


@st.composite
def feedback_specs(draw, objects, reposts, partners, groups, collections) -> tuple[FeedbackSpec, ...]:
    """Sightings and false-positive reports about objects the reporter may or may not see, or never-held ids.

    Reporters are mostly readers of the object's collection (so that many reports are accepted), now and then
    anyone (so that many are about objects hidden from the reporter).
    """
    targets = {o.n: o for o in single_publisher(objects, reposts)}
    world = policy.World(
        {g.slug: policy.TrustGroup(g.slug, frozenset(g.members), frozenset(g.countries)) for g in groups}
    )
    slugs = [p.slug for p in partners]
    out = []
    for i in range(draw(st.sampled_from([6, 10, 3, 0]))):
        target = draw(st.sampled_from([*targets, *targets, None])) if targets else None
        readers = slugs
        if target is not None:
            c = next(c for c in collections if c.alias == targets[target].alias)
            grants = policy.Grants.parse(c.readers)
            readers = [p.slug for p in partners if world.granted(grants, policy_partner(p, reading=False))] or slugs
        out.append(
            FeedbackSpec(
                i,
                draw(st.sampled_from([*readers, *readers, *slugs])),
                target,
                draw(mostly("sighting", "false_positive")),
                draw(
                    st.sampled_from([(), (TLP2[TLP.GREEN],), (TLP2[TLP.AMBER],), (TLP2[TLP.CLEAR],), (TLP2[TLP.RED],)])
                ),
                draw(st.booleans()),
                draw(st.integers(1, 3)),
            )
        )
    return tuple(out)


@st.composite
def repost_specs(draw, objects: tuple[ObjectSpec, ...], slugs, aliases) -> tuple[RepostSpec, ...]:
    """Copies of published versions: by readers of the original and by others, often into another collection."""
    out = []
    for _ in range(draw(st.sampled_from([0, 4, 8, 12]))):
        o = draw(st.sampled_from(objects))
        out.append(
            RepostSpec(
                o.n,
                draw(st.integers(0, len(o.versions) - 1)),
                draw(st.sampled_from([o.versions[0].publisher, *slugs])),
                draw(st.sampled_from(aliases)),
                draw(mostly(False, True)),
            )
        )
    return tuple(out)


# --------------------------------------------------------------------- fresh databases


@pytest.fixture
def fresh_app(make_app, db_engine_name, db_template, tmp_path) -> Callable:
    """Build an app on a new empty database at each call (one per hypothesis example)."""
    counter = itertools.count()

    def build():
        path = tmp_path / f"example-{next(counter)}.db"
        # Suspended partners fail to log in on every path; keep the login rate limit out of the way.
        return make_app(database_url=fresh_database_url(db_engine_name, db_template, path), login_failure_limit=10**6)

    return build


# --------------------------------------------------------------------- building and publishing


def build_world(hub: Hub, spec: WorldSpec) -> tuple[dict[str, int], dict[str, str], dict[str, str]]:
    """Create partners, groups and collections; return partner pks, collection uuids and API keys."""
    with hub.session() as s:
        f.hub_partner(s)
        rows = {
            p.slug: f.add_partner(s, p.slug, p.country, p.clearance, active=p.state != INACTIVE) for p in spec.partners
        }
        for p in spec.partners:
            rows[p.slug].acs_organization = p.organization
        for g in spec.groups:
            f.add_group(s, g.slug, [rows[slug] for slug in g.members], g.countries)
        root = f.add_root(s, ROOT)
        uuids = {
            c.alias: f.add_collection(
                s,
                root,
                c.alias,
                max_tlp=c.max_tlp,
                default_tlp=c.default_tlp,
                types=c.types,
                readers=c.readers,
                writers=c.writers,
                feedback=c.feedback,
            ).uuid
            for c in spec.all_collections()
        }
        pks = {slug: row.id for slug, row in rows.items()}
        # The hub's statement marking a reporter shares feedback with (the reference collection's, here alone).
        share = reference.feedback_share_marking()
        s.add(models.Marking(id=share["id"], kind="statement", raw=orjson.dumps(share).decode()))
    keys = {p.slug: f.key_for(hub, p.slug) for p in spec.partners}
    return pks, uuids, keys


def publish_markings(hub: Hub, spec: WorldSpec, pks: dict, uuids: dict, ledger: Ledger) -> None:
    """Each sharing marking is posted by its owner into the open markings collection."""
    for m in spec.markings:
        obj = m.definition()
        result = ingest.ingest_envelope(hub, pks[m.owner], uuids[MARKINGS], [obj], with_status=True)
        ledger.statuses[m.owner].append(result.status_id)
        expected = spec.partner(m.owner).state != INACTIVE and bool(m.acs or m.partners or m.groups or m.countries)
        assert bool(result.successes) == expected, result.failures
        if expected:
            ledger.markings[m.id] = policy_marking(m)
            # An ACS marking's definition is public content: the restriction it states is on other objects.
            defines = None if m.acs else policy_marking(m)
            facts = policy.ObjectFacts("marking-definition", TLP.CLEAR, m.owner, defines=defines)
            ledger.stored.append(Stored(m.id, obj["created"], 0, MARKINGS, facts, obj))


def stix_object(o: ObjectSpec, rank: int) -> dict:
    v = o.versions[rank]
    refs = [*v.tlp_refs, *v.sharing]
    modified = f"2024-05-{rank + 1:02d}T00:00:00.000Z"
    if o.kind == "indicator":
        return f.indicator(o.n, markings=refs, modified=modified, confidence=10 * rank + 5, id=o.id)
    obj = {
        "type": "malware",
        "spec_version": "2.1",
        "id": o.id,
        "created": f.CLOCK,
        "modified": modified,
        "name": f"Lazarus implant {o.n}",
        "is_family": True,
        "description": f"version {rank}",
    }
    if refs:
        obj["object_marking_refs"] = refs
    return obj


def knows_marking(spec: WorldSpec, ledger: Ledger, publisher: str, marking_id: str) -> bool:
    """A publisher knows a stored marking it defined or can read; any other is as unknown as an undefined one."""
    if marking_id not in ledger.markings:
        return False
    owner = next(m.owner for m in spec.markings if m.id == marking_id)
    if owner == publisher:
        return True
    rules = policy_collection(spec.all_collections()[0], reading=False)
    defines = None if ledger.markings[marking_id].acs else ledger.markings[marking_id]
    facts = policy.ObjectFacts("marking-definition", TLP.CLEAR, owner, defines=defines)
    return policy.can_read(
        policy_world(spec), policy_partner(spec.partner(publisher), reading=False), rules, facts
    ).allowed


def version_facts(
    spec: WorldSpec, ledger: Ledger, o: ObjectSpec, rank: int, rules: policy.Collection
) -> policy.ObjectFacts:
    """The facts the rules see for one version, derived from the model (not from the hub)."""
    return posted_facts(spec, ledger, o, rank, rules, o.versions[rank].publisher)


def posted_facts(
    spec: WorldSpec, ledger: Ledger, o: ObjectSpec, rank: int, rules: policy.Collection, poster: str
) -> policy.ObjectFacts:
    """The facts of version ``rank`` of ``o`` as ``poster`` posts it into a collection with these rules."""
    v = o.versions[rank]
    tlp = policy.effective_tlp([TLP_REFS[r] for r in v.tlp_refs], rules.default_tlp)
    known = [knows_marking(spec, ledger, poster, m) for m in v.sharing]
    sharing = tuple(ledger.markings[m] for m, k in zip(v.sharing, known, strict=True) if k)
    unknown = tuple(m for m, k in zip(v.sharing, known, strict=True) if not k)
    return policy.ObjectFacts(o.kind, tlp, poster, sharing, unknown)


def publish_envelope(
    hub: Hub, spec: WorldSpec, ledger: Ledger, pks: dict, uuids: dict, batch: list[ObjectSpec], rank: int
) -> None:
    """Post one envelope; the hub must accept exactly the versions the write rules allow."""
    publisher, alias = batch[0].versions[rank].publisher, batch[0].alias
    rules = policy_collection(next(c for c in spec.collections if c.alias == alias), reading=False)
    writer = policy_partner(spec.partner(publisher), reading=False)
    objects = [stix_object(o, rank) for o in batch]
    result = ingest.ingest_envelope(hub, pks[publisher], uuids[alias], objects, with_status=True)
    ledger.statuses[publisher].append(result.status_id)
    accepted = {(s["id"], s["version"]) for s in result.successes}
    for o, obj in zip(batch, objects, strict=True):
        facts = version_facts(spec, ledger, o, rank, rules)
        owner = ledger.owners.get(o.id)
        if owner not in (None, publisher) and not sees_stored(spec, ledger, writer, o.id):
            # Posting under an id the poster cannot see: its own quarantined copy, as for a never-held id.
            facts, owner = dataclasses.replace(facts, quarantined=True), None
        decision = policy.can_write(policy_world(spec), writer, rules, facts, owner=owner)
        assert ((o.id, obj["modified"]) in accepted) == decision.allowed, (decision, result.failures)
        if decision:
            if not facts.quarantined:
                ledger.owners.setdefault(o.id, publisher)
            ledger.stored.append(Stored(o.id, obj["modified"], rank, alias, facts, obj))


def sees_stored(spec: WorldSpec, ledger: Ledger, who: policy.Partner, stix_id: str) -> bool:
    """Whether a partner can read a version of ``stix_id`` that others published, in any collection, now."""
    world = policy_world(spec)
    for stored in ledger.stored:
        if stored.id.lower() != stix_id.lower() or stored.facts.originator == who.slug:
            continue
        c = next(c for c in spec.all_collections() if c.alias == stored.alias)
        if policy.can_read(world, who, policy_collection(c, reading=False), stored.facts):
            return True
    return False


def publish(hub: Hub, spec: WorldSpec, pks: dict, uuids: dict) -> Ledger:
    """Publish markings, then each version round as one envelope per (publisher, collection)."""
    ledger = Ledger()
    publish_markings(hub, spec, pks, uuids, ledger)
    for rank in range(3):
        batches: dict[tuple[str, str], list[ObjectSpec]] = defaultdict(list)
        for o in spec.objects:
            if rank < len(o.versions):
                batches[(o.versions[rank].publisher, o.alias)].append(o)
        for batch in batches.values():
            publish_envelope(hub, spec, ledger, pks, uuids, batch, rank)
    for repost in spec.reposts:
        publish_repost(hub, spec, ledger, pks, uuids, repost)
    for fb in spec.feedback:
        publish_feedback(hub, spec, ledger, pks, uuids, fb)
    add_aggregates(hub, spec, ledger, uuids)
    return ledger


NEVER_HELD = "indicator--0b7f1d5e-4a3c-4e2b-9f6a-1c2d3e4f5a6b"


def feedback_object(fb: FeedbackSpec, target: str, reporter_identity: str) -> dict:
    refs = [*fb.tlp_refs, *([FEEDBACK_SHARE_ID] if fb.share else [])]
    obj: dict = {"spec_version": "2.1", "id": fb.id, "created": f.CLOCK, "modified": f.CLOCK}
    if fb.kind == "sighting":
        obj |= {
            "type": "sighting",
            "sighting_of_ref": target,
            "where_sighted_refs": [reporter_identity],
            "count": fb.count,
            "first_seen": "2024-06-01T00:00:00Z",
            "last_seen": f"2024-06-0{fb.count + 1}T00:00:00Z",
        }
    else:
        obj |= {"type": "opinion", "opinion": "strongly-disagree", "object_refs": [target]}
    if refs:
        obj["object_marking_refs"] = refs
    return obj


def seen_versions(spec: WorldSpec, ledger: Ledger, who: policy.Partner, stix_id: str) -> list[Stored]:
    """The versions of an object a partner sees now in the ordinary collections, newest last."""
    world = policy_world(spec)
    out = []
    for stored in ledger.stored:
        c = next(c for c in spec.all_collections() if c.alias == stored.alias)
        if stored.id == stix_id and stored.alias not in (MARKINGS, FEEDBACK):
            if policy.can_read(world, who, policy_collection(c, reading=False), stored.facts):
                out.append(stored)
    return sorted(out, key=lambda s: s.rank)


def beside(c: CollectionSpec, kind: str) -> bool:
    """``feedback.releasable_beside`` in the model: a sighting may stand beside a ``kind`` object in ``c``."""
    return not c.types or ("sighting" in c.types and kind in c.types)


def publish_feedback(hub: Hub, spec: WorldSpec, ledger: Ledger, pks: dict, uuids: dict, fb: FeedbackSpec) -> None:
    """Post one sighting or report: refused like a never-held id unless the reporter sees its object, stored
    for the originator, and copied beside the object when shared."""
    o = next((o for o in spec.objects if o.n == fb.target), None)
    target = o.id if o is not None else NEVER_HELD
    reporter = policy_partner(spec.partner(fb.reporter), reading=False)
    obj = feedback_object(fb, target, f"identity--{uuid.uuid5(f.HUB_NAMESPACE, fb.reporter)}")
    result = ingest.ingest_envelope(hub, pks[fb.reporter], uuids[FEEDBACK], [obj], with_status=True)
    ledger.statuses[fb.reporter].append(result.status_id)
    seen = seen_versions(spec, ledger, reporter, target) if reporter.active else []
    if not seen:
        field = "sighting_of_ref" if fb.kind == "sighting" else "object_refs"
        absent = f"{field} {target}: no object with this id is available to you in API root {ROOT}"
        assert [x["message"] for x in result.failures] == [absent], result.failures
        return
    owner = seen[-1].facts.originator
    rules = policy_collection(next(c for c in spec.all_collections() if c.feedback), reading=False)
    tlp = policy.effective_tlp([TLP_REFS[r] for r in fb.tlp_refs], rules.default_tlp)
    facts = policy.ObjectFacts(obj["type"], tlp, fb.reporter, feedback_for=owner)
    receiver = policy_partner(spec.partner(owner), reading=False)
    allowed = policy.can_report(policy_world(spec), receiver, rules, facts)
    allowed = allowed and policy.can_write(policy_world(spec), reporter, rules, facts)
    assert bool(result.successes) == bool(allowed), (allowed, result.failures)
    if not allowed:
        return
    ledger.stored.append(Stored(fb.id, f.CLOCK, 0, FEEDBACK, facts, obj))
    ledger.feedback.append((fb, facts, target))
    c = next(c for c in spec.collections if c.alias == o.alias)
    if fb.share and beside(c, o.kind):
        t = seen[-1].facts
        copy = policy.ObjectFacts(obj["type"], max(tlp, t.tlp), fb.reporter, t.sharing, t.unknown_markings)
        ledger.stored.append(Stored(fb.id, f.CLOCK, 0, o.alias, copy, obj))


def model_tally(ledger: Ledger, stix_id: str, target_tlp: TLP) -> feedback.Tally:
    """The anonymous counts of an object at one TLP, from the model's stored feedback alone."""
    sightings = 0
    reporters, firsts, lasts = set(), [], []
    for fb, facts, target in ledger.feedback:
        if target != stix_id or facts.tlp > target_tlp or facts.tlp >= TLP.RED:
            continue
        if fb.kind == "sighting":
            sightings += fb.count
            firsts.append(stix.parse_timestamp("2024-06-01T00:00:00Z"))
            lasts.append(stix.parse_timestamp(f"2024-06-0{fb.count + 1}T00:00:00Z"))
        else:
            reporters.add(fb.reporter)
    return feedback.Tally(sightings, len(reporters), min(firsts, default=None), max(lasts, default=None))


def add_aggregates(hub: Hub, spec: WorldSpec, ledger: Ledger, uuids: dict) -> None:
    """The hub's anonymous sighting beside each object with counts: released exactly like its newest version.

    Whether one exists, and its counts, come from the model; only its versions' timestamps (the hub's clock)
    are read from the store.
    """
    for o in single_publisher(spec.objects, spec.reposts):
        c = next(c for c in spec.collections if c.alias == o.alias)
        versions = sorted((s for s in ledger.stored if s.id == o.id and s.alias == o.alias), key=lambda s: s.rank)
        agg_id = f"sighting--{uuid.uuid5(f.HUB_NAMESPACE, f'aggregate|{uuids[o.alias]}|{o.id}')}"
        with hub.session(write=False) as s:
            stored = (
                s.execute(
                    select(models.ObjectVersion.raw)
                    .where(models.ObjectVersion.stix_id == agg_id)
                    .order_by(models.ObjectVersion.version_us)
                )
                .scalars()
                .all()
            )
        expected = model_tally(ledger, o.id, versions[-1].facts.tlp) if versions else feedback.Tally()
        if not (expected and beside(c, o.kind)):
            assert stored == [], o
            continue
        newest = orjson.loads(stored[-1])
        assert (newest["count"], newest["x_cti_hub_false_positives"]) == (expected.sightings, expected.false_positives)
        assert "where_sighted_refs" not in newest and newest["sighting_of_ref"] == o.id
        t = versions[-1].facts
        facts = policy.ObjectFacts("sighting", t.tlp, "hub", t.sharing, t.unknown_markings)
        for rank, raw in enumerate(stored):
            obj = orjson.loads(raw)
            ledger.stored.append(Stored(agg_id, obj["modified"], rank, o.alias, facts, obj))


def publish_repost(hub: Hub, spec: WorldSpec, ledger: Ledger, pks: dict, uuids: dict, r: RepostSpec) -> None:
    """Post one copy; the hub must answer as the originator rules say (SECURITY.md "No laundering through copies").

    The owner's copy keeps the TLP of the version's first publication; another partner's copy is refused
    when that partner can see the object, and is its own quarantined copy when it cannot; an identical
    copy already in the collection is a duplicate. Ids differing only in case are one id throughout.
    """
    o = next(o for o in spec.objects if o.n == r.n)
    obj = stix_object(o, r.rank)
    if r.upper:
        kind, uid = obj["id"].split("--")
        obj["id"] = f"{kind}--{uid.upper()}"
    rules = policy_collection(next(c for c in spec.collections if c.alias == r.alias), reading=False)
    writer = policy_partner(spec.partner(r.poster), reading=False)
    facts = posted_facts(spec, ledger, o, r.rank, rules, r.poster)
    result = ingest.ingest_envelope(hub, pks[r.poster], uuids[r.alias], [obj], with_status=True)
    ledger.statuses[r.poster].append(result.status_id)
    here = [s for s in ledger.stored if s.alias == r.alias and s.id == obj["id"] and s.version == obj["modified"]]
    owner = ledger.owners.get(o.id)
    if owner not in (None, r.poster):
        if sees_stored(spec, ledger, writer, o.id):
            may_write = policy.can_write(policy_world(spec), writer, rules, facts)
            duplicate = may_write.allowed and any(not s.facts.quarantined for s in here)
            assert bool(result.successes) == duplicate, (r, result.failures)
            return
        facts = dataclasses.replace(facts, quarantined=True)
    else:
        earliest = next(
            (
                s.facts.tlp
                for s in ledger.stored
                if s.id.lower() == o.id and s.version == obj["modified"] and not s.facts.quarantined
            ),
            None,
        )
        if earliest is not None and earliest > facts.tlp:
            facts = dataclasses.replace(facts, tlp=earliest)
    decision = policy.can_write(policy_world(spec), writer, rules, facts)
    assert bool(result.successes) == decision.allowed, (r, decision, result.failures)
    duplicate = any(s.facts.quarantined == facts.quarantined and s.facts.originator == r.poster for s in here)
    if decision and not duplicate:
        if not facts.quarantined:
            ledger.owners.setdefault(o.id, r.poster)
        ledger.stored.append(Stored(obj["id"], obj["modified"], r.rank, r.alias, facts, obj))


def apply_later_changes(hub: Hub, spec: WorldSpec, uuids: dict) -> None:
    """Suspend partners and tighten collections after publishing, as an administrator would."""
    with hub.session() as s:
        for p in spec.partners:
            if p.state == SUSPENDED_LATER:
                s.execute(update(models.Partner).where(models.Partner.slug == p.slug).values(active=False))
        for c in spec.collections:
            changes = {}
            if c.later_max_tlp is not None:
                changes["max_tlp"] = int(c.later_max_tlp)
            if c.later_types is not None:
                changes["types"] = ",".join(c.later_types)
            if changes:
                s.execute(update(models.Collection).where(models.Collection.uuid == uuids[c.alias]).values(**changes))
        snapshots.bump_rules(s)


# --------------------------------------------------------------------- what the partner should receive


def latest(versions: Iterable[Stored]) -> list[Stored]:
    """TAXII's default match[version]=last, over the versions this partner may see."""
    best: dict[str, Stored] = {}
    for s in versions:
        if s.id not in best or s.rank > best[s.id].rank:
            best[s.id] = s
    return list(best.values())


def pairs(items: Iterable[Stored]) -> list[tuple[str, str]]:
    return sorted((s.id, s.version) for s in items)


def object_pairs(objects: list[dict]) -> list[tuple[str, str]]:
    return sorted((o["id"], o.get("modified", o.get("created"))) for o in objects)


def manifest_pairs(entries: list[dict]) -> list[tuple[str, str]]:
    return sorted((e["id"], e["version"]) for e in entries)


# --------------------------------------------------------------------- what the partner does receive


ISSUED: list[str] = []  # every next token served in this example, to replay as other partners


def pull(client: f.Client, url: str, params: dict, limit: int, *, resend: bool) -> list[dict]:
    """Page through an endpoint with ``next``, resending the original filters or not."""
    first = {**params, "limit": limit}
    response, items = client.get(url, first), []
    for _ in range(500):
        assert response.status_code == 200, response.get_data()
        assert "X-CTI-Hub-Next-Ignored" not in response.headers
        body = response.get_json()
        items += body.get("objects", [])
        if not body.get("more"):
            return items
        assert body.get("next"), "more: true without next"
        ISSUED.append(body["next"])
        response = client.get(url, {**(first if resend else {"limit": limit}), "next": body["next"]})
    raise AssertionError("paging does not end")


class AbsentReference:
    """Answers for ids that exist nowhere, to compare hidden objects (and statuses) against."""

    def __init__(self, client: f.Client) -> None:
        self.client, self.seen = client, {}

    def assert_like_absent(self, response, hidden: str, template: str, params: dict | None = None) -> None:
        kind = hidden.split("--")[0] if "--" in hidden else ""
        key = (template, kind, tuple(sorted((params or {}).items())))
        if key not in self.seen:
            absent = f"{kind}--{uuid.uuid4()}" if kind else str(uuid.uuid4())
            self.seen[key] = (absent, self.client.get(template.format(absent), params))
        absent, reference = self.seen[key]
        assert response.status_code == reference.status_code == 404, (template, hidden)
        assert sorted(response.headers.keys()) == sorted(reference.headers.keys())
        assert response.get_data(as_text=True).replace(hidden, "X") == reference.get_data(as_text=True).replace(
            absent, "X"
        )


def check_collection_listing(client: f.Client, spec: WorldSpec, uuids: dict, slug: str) -> None:
    world, who = policy_world(spec), policy_partner(spec.partner(slug), reading=True)
    expected = {}
    for c in spec.all_collections():
        rules = policy_collection(c, reading=True)
        reads, writes = world.granted(rules.readers, who), world.granted(rules.writers, who)
        if reads or writes:
            expected[uuids[c.alias]] = (reads, writes)
    response = client.get(f"/{ROOT}/collections/")
    assert response.status_code == 200
    listed = response.get_json().get("collections", [])
    assert {c["id"]: (c["can_read"], c["can_write"]) for c in listed} == expected


def assert_as_published(objects: list[dict], visible: list[Stored]) -> None:
    raw = {(s.id, s.version): s.raw for s in visible}
    assert all(o == raw[(o["id"], o.get("modified", o.get("created")))] for o in objects)


def check_listings(client: f.Client, url: str, visible: list[Stored], all_ids: list[str], limit: int) -> None:
    """objects and manifest, paged both ways, default and all versions, and by match[id]."""
    last = pull(client, url + "objects/", {}, limit, resend=True)
    assert object_pairs(last) == pairs(latest(visible))
    every = pull(client, url + "objects/", {"match[version]": "all"}, limit, resend=False)
    assert object_pairs(every) == pairs(visible)
    assert_as_published(last + every, visible)
    manifest = pull(client, url + "manifest/", {}, limit, resend=False)
    assert manifest_pairs(manifest) == pairs(latest(visible))
    manifest_all = pull(client, url + "manifest/", {"match[version]": "all"}, limit, resend=True)
    assert manifest_pairs(manifest_all) == pairs(visible)
    assert [(o["id"], o.get("modified", o.get("created"))) for o in every] == [
        (e["id"], e["version"]) for e in manifest_all
    ]
    stamps = [e["date_added"] for e in manifest_all]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    by_id = {"match[id]": ",".join(all_ids), "match[version]": "all"}
    for suffix, as_pairs in (("objects/", object_pairs), ("manifest/", manifest_pairs)) if all_ids else ():
        response = client.get(url + suffix, by_id)
        assert response.status_code == 200
        assert as_pairs(response.get_json().get("objects", [])) == pairs(visible)


def check_foreign_tokens(client: f.Client, url: str, limit: int) -> None:
    """Tokens issued to others (any partner, collection or endpoint), or damaged, release nothing they name.

    The request answers exactly what the same request without a token answers: the partner's own
    view from the start, which the listing checks above hold to the rules.
    """

    def without_next(response) -> dict:  # type: ignore[no-untyped-def]
        body = response.get_json()
        return {**body, "next": bool(body.get("next"))}  # a token carries its issue time

    plain = without_next(client.get(url + "objects/", {"limit": limit}))
    for token in [*ISSUED[-6:], *(t[:-3] + "AAA" for t in ISSUED[-2:]), "0"]:
        response = client.get(url + "objects/", {"limit": limit, "next": token})
        if "X-CTI-Hub-Next-Ignored" not in response.headers:
            continue  # the partner's own token for this very request: a continuation, checked by pull()
        assert response.status_code == 200 and without_next(response) == plain


def check_each_object(client: f.Client, url: str, all_ids: list[str], visible: list[Stored]) -> None:
    """Object and versions endpoints: visible ids answer with their visible versions, others like absent ones."""
    mine: dict[str, list[Stored]] = defaultdict(list)
    for s in visible:
        mine[s.id].append(s)
    absent = AbsentReference(client)
    for obj_id in all_ids:
        got = client.get(f"{url}objects/{obj_id}/", {"match[version]": "all"})
        versions = client.get(f"{url}objects/{obj_id}/versions/")
        if obj_id not in mine:
            absent.assert_like_absent(got, obj_id, url + "objects/{}/", {"match[version]": "all"})
            absent.assert_like_absent(versions, obj_id, url + "objects/{}/versions/")
            continue
        assert got.status_code == 200 and versions.status_code == 200
        assert object_pairs(got.get_json()["objects"]) == pairs(mine[obj_id])
        assert_as_published(got.get_json()["objects"], mine[obj_id])
        # In date_added order, the order the ledger holds them: a repost can add an older version last.
        assert versions.get_json()["versions"] == [s.version for s in mine[obj_id]]


def collection_url(col_uuid: str) -> str:
    return f"/{ROOT}/collections/{col_uuid}/"


def check_unreadable(client: f.Client, col_uuid: str, writes: bool) -> None:
    """A collection the partner may not read: 403 when it writes there, else exactly like a missing one."""
    absent = AbsentReference(client)
    for suffix in ("objects/", "manifest/"):
        response = client.get(collection_url(col_uuid) + suffix)
        assert "objects" not in (response.get_json() or {})
        if writes:
            assert response.status_code == 403
        else:
            absent.assert_like_absent(response, col_uuid, collection_url("{}") + suffix)
    if not writes:
        absent.assert_like_absent(client.get(collection_url(col_uuid)), col_uuid, collection_url("{}"))


def check_statuses(client: f.Client, ledger: Ledger, slug: str) -> None:
    """A partner reads its own status resources; anyone else's look like ids that do not exist."""
    for status_id in ledger.statuses.get(slug, [])[:2]:
        response = client.get(f"/{ROOT}/status/{status_id}/")
        assert response.status_code == 200 and response.get_json()["id"] == status_id
    others = [sid for other, ids in ledger.statuses.items() if other != slug for sid in ids]
    absent = AbsentReference(client)
    for status_id in others[:3]:
        absent.assert_like_absent(client.get(f"/{ROOT}/status/{status_id}/"), status_id, f"/{ROOT}/status/{{}}/")


def check_locked_out(client: f.Client, uuids: dict) -> None:
    for path in ("/taxii2/", f"/{ROOT}/collections/", *(collection_url(u) + "objects/" for u in uuids.values())):
        response = client.get(path)
        assert response.status_code == 401 and "objects" not in (response.get_json() or {})


def ids_in(spec: WorldSpec, ledger: Ledger, alias: str) -> list[str]:
    """Every id published (or refused) in a collection, plus a few stored in other collections."""
    here = {o.id for o in spec.objects if o.alias == alias} | {s.id for s in ledger.stored if s.alias == alias}
    if alias == MARKINGS:
        here |= {m.id for m in spec.markings}
    elsewhere = sorted({s.id for s in ledger.stored} - here)[:2]
    return sorted(here) + elsewhere


def marking_audience(spec: WorldSpec, ledger: Ledger, slug: str) -> set[str]:
    """The sharing markings a partner may receive: it published them, they admit it, or it sees an object using one.

    Worked out from the model alone (no expected views): what the listings are checked against must not
    be the only guard on who learns whom a marking names.
    """
    world, who = policy_world(spec), policy_partner(spec.partner(slug), reading=True)
    out = {m.id for m in spec.markings if m.owner == slug or world.marking_admits(policy_marking(m), who)}
    for s in ledger.stored:
        rules = policy_collection(next(c for c in spec.all_collections() if c.alias == s.alias), reading=True)
        if s.raw.get("type") != "marking-definition" and policy.can_read(world, who, rules, s.facts):
            out |= set(s.raw.get("object_marking_refs") or ())
    return out


def check_marking_audience(
    client: f.Client, spec: WorldSpec, ledger: Ledger, url: str, col_uuid: str, slug: str
) -> None:
    """On every read path (objects, manifest, object, versions, STIX feed) no other sharing marking reaches it."""
    audience, defined = marking_audience(spec, ledger, slug), {m.id for m in spec.markings if not m.acs}
    received = {o["id"] for o in pull(client, url + "objects/", {"match[version]": "all"}, 50, resend=False)}
    received |= {o["id"] for o in pull(client, url + "manifest/", {"match[version]": "all"}, 50, resend=False)}
    for marking in sorted(defined):
        for suffix in (f"objects/{marking}/", f"objects/{marking}/versions/"):
            if client.get(url + suffix).status_code == 200:
                received.add(marking)
    response = client.get(f"/feeds/{ROOT}/{col_uuid}/stix")
    assert response.status_code == 200, response.get_data()
    received |= {o["id"] for o in response.get_json().get("objects", [])}
    leaked = (received & defined) - audience
    assert not leaked, f"sharing markings {sorted(leaked)} reached {slug}"


def check_feedback_counts(client: f.Client, ledger: Ledger, col_uuid: str) -> None:
    """The CSV feed's counts beside each indicator are the model's anonymous counts at the TLP it lists."""
    response = client.get(f"/feeds/{ROOT}/{col_uuid}/csv")
    assert response.status_code == 200, response.get_data()
    for row in csv.DictReader(io.StringIO(response.get_data(as_text=True))):
        expected = model_tally(ledger, row["id"], TLP.parse(row["tlp"]))
        last = stix.format_timestamp(expected.last_seen_us) if expected.last_seen_us is not None else ""
        assert (row["sightings"], row["false_positives"], row["last_seen"]) == (
            str(expected.sightings),
            str(expected.false_positives),
            last,
        ), row


def check_partner(app, spec: WorldSpec, ledger: Ledger, uuids: dict, key: str, slug: str) -> None:
    """Everything this partner can reach over TAXII against the model's expectation."""
    client = f.Client(app.test_client(), key)
    who, world = policy_partner(spec.partner(slug), reading=True), policy_world(spec)
    if not who.active:
        check_locked_out(client, uuids)
        return
    check_collection_listing(client, spec, uuids, slug)
    check_statuses(client, ledger, slug)
    for c in spec.all_collections():
        rules = policy_collection(c, reading=True)
        url = collection_url(uuids[c.alias])
        if not world.granted(rules.readers, who):
            check_unreadable(client, uuids[c.alias], world.granted(rules.writers, who))
            continue
        visible = [s for s in ledger.stored if s.alias == c.alias and policy.can_read(world, who, rules, s.facts)]
        all_ids = ids_in(spec, ledger, c.alias)
        check_foreign_tokens(client, url, spec.page_limit)
        check_listings(client, url, visible, all_ids, spec.page_limit)
        check_each_object(client, url, all_ids, visible)
        check_marking_audience(client, spec, ledger, url, uuids[c.alias], slug)
        if c.alias not in (MARKINGS, FEEDBACK):
            check_feedback_counts(client, ledger, uuids[c.alias])


def run_world(app, spec: WorldSpec) -> tuple[dict[str, str], dict[str, str]]:
    """Build, publish, tighten, then check every partner on every collection and read path.

    Returns the collection uuids and the partners' API keys.
    """
    hub = app.extensions["cti_hub"]
    ISSUED.clear()
    try:
        pks, uuids, keys = build_world(hub, spec)
        ledger = publish(hub, spec, pks, uuids)
        apply_later_changes(hub, spec, uuids)
        for p in spec.partners:
            check_partner(app, spec, ledger, uuids, keys[p.slug], p.slug)
        return uuids, keys
    finally:
        hub.engine.dispose()


# --------------------------------------------------------------------- the tests


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(spec=world_specs())
def test_every_partner_receives_exactly_what_the_rules_release(fresh_app, spec):
    run_world(fresh_app(), spec)


def marking_id(name: str) -> str:
    return f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, name)}"


M_CISA, M_ASEAN_NOT_MY, M_KR = marking_id("cisa"), marking_id("asean-not-my"), marking_id("kr")
M_ROKUS, M_RED, M_EMPTY, M_BY_INACTIVE = (marking_id(n) for n in ("rokus", "red", "empty", "by-inactive"))
GREEN, AMBER, AMBER_STRICT, RED = (TLP2[level] for level in (TLP.GREEN, TLP.AMBER, TLP.AMBER_STRICT, TLP.RED))
TLP1_AMBER, TLP1_WHITE = TLP1["TLP:AMBER"], TLP1["TLP:WHITE"]


def one(n: int, publisher: str, *refs: str, kind: str = "indicator", alias: str = "alpha") -> ObjectSpec:
    """An object with a single version; ``refs`` mixes TLP and sharing marking ids."""
    tlp = tuple(r for r in refs if r in TLP_REFS)
    return ObjectSpec(n, kind, alias, (VersionSpec(publisher, tlp, tuple(r for r in refs if r not in TLP_REFS)),))


HAND_BUILT = WorldSpec(
    partners=(
        PartnerSpec("krcert", "KR", TLP.RED),
        PartnerSpec("cisa", "US", TLP.RED),
        PartnerSpec("singcert", "SG", TLP.AMBER),
        PartnerSpec("mycert", "MY", TLP.GREEN),
        PartnerSpec("jpcert", "JP", TLP.RED),
        PartnerSpec("thaicert", "TH", TLP.RED, INACTIVE),
        PartnerSpec("vncert", "VN", TLP.AMBER, SUSPENDED_LATER),
    ),
    groups=(GroupSpec("rokus", ("krcert", "cisa")), GroupSpec("asean", countries=("SG", "MY", "TH", "VN"))),
    collections=(
        CollectionSpec("alpha"),
        CollectionSpec(
            "bravo",
            TLP.AMBER_STRICT,
            TLP.AMBER,
            readers=("group:rokus", "partner:singcert"),
            writers=("group:rokus",),
            later_max_tlp=TLP.AMBER,
        ),
        CollectionSpec(
            "charlie",
            types=("indicator", "malware"),
            readers=("group:asean",),
            writers=("partner:krcert", "partner:cisa"),
            later_types=("indicator",),
        ),
    ),
    markings=(
        MarkingSpec(M_CISA, "krcert", partners=("cisa",)),
        MarkingSpec(M_ASEAN_NOT_MY, "singcert", groups=("asean",), exclude=("mycert",)),
        MarkingSpec(M_KR, "cisa", countries=("KR", "VN")),
        MarkingSpec(M_ROKUS, "krcert", groups=("rokus",)),
        MarkingSpec(M_RED, "cisa", partners=("krcert",), countries=("JP",)),
        MarkingSpec(M_EMPTY, "mycert"),
        MarkingSpec(M_BY_INACTIVE, "thaicert", partners=("krcert",)),
    ),
    objects=(
        one(0, "krcert", GREEN),
        one(1, "krcert", TLP1_AMBER),
        one(2, "cisa", OPENCTI_AMBER_STRICT),
        one(3, "cisa", RED, M_RED),
        one(4, "singcert", GREEN, M_ASEAN_NOT_MY, kind="malware"),
        ObjectSpec(
            5,
            "indicator",
            "alpha",
            (VersionSpec("krcert", (GREEN,)), VersionSpec("krcert", (AMBER,)), VersionSpec("krcert", (AMBER_STRICT,))),
        ),
        ObjectSpec(6, "indicator", "alpha", (VersionSpec("krcert", (TLP1_WHITE,)), VersionSpec("cisa"))),
        one(7, "mycert"),
        one(8, "krcert", UNDEFINED),
        one(9, "krcert", TLP1_RED),
        one(10, "krcert", M_KR, M_ROKUS),
        one(11, "cisa", M_KR, M_ROKUS),
        one(12, "krcert", M_EMPTY),
        one(13, "krcert", RED, M_BY_INACTIVE),
        one(14, "krcert", AMBER_STRICT, alias="bravo"),
        one(15, "cisa", alias="bravo"),
        one(16, "krcert", kind="malware", alias="charlie"),
        one(17, "cisa", GREEN, alias="charlie"),
        one(18, "singcert", alias="charlie"),
        one(19, "vncert", GREEN, M_KR),
        one(20, "thaicert", GREEN),
    ),
    page_limit=2,
    feedback=(
        FeedbackSpec(0, "cisa", 0, "sighting", (GREEN,), count=2),
        FeedbackSpec(1, "singcert", 0, "false_positive", (GREEN,)),
        FeedbackSpec(2, "mycert", 14, "sighting"),  # bravo is not mycert's: like an absent id
        FeedbackSpec(3, "jpcert", None, "sighting"),  # never held
        FeedbackSpec(4, "cisa", 1, "sighting", (AMBER,), share=True),
        FeedbackSpec(5, "jpcert", 5, "false_positive", (GREEN,), share=True),
        FeedbackSpec(6, "krcert", 3, "sighting", (RED,)),  # TLP:RED naming nobody: refused
    ),
)


def default_view(app, key: str, col_uuid: str) -> dict[str, str]:
    """What a partner's plain GET of a collection's objects returns: id -> version."""
    body = f.Client(app.test_client(), key).get(collection_url(col_uuid) + "objects/").get_json()
    return {o["id"]: o.get("modified", o.get("created")) for o in body.get("objects", [])}


def test_hand_built_world(make_app):
    app = make_app()
    uuids, keys = run_world(app, HAND_BUILT)
    obj = {o.n: o.id for o in HAND_BUILT.objects}
    views = {
        slug: default_view(app, keys[slug], uuids["alpha"])
        for slug in ("krcert", "cisa", "singcert", "mycert", "jpcert")
    }
    assert [views[s].get(obj[5]) for s in ("mycert", "singcert", "krcert")] == [
        "2024-05-01T00:00:00.000Z",
        "2024-05-02T00:00:00.000Z",
        "2024-05-03T00:00:00.000Z",
    ]
    assert obj[3] in views["krcert"] and obj[3] not in views["jpcert"]  # RED: named, not merely admitted
    assert obj[4] in views["singcert"] and obj[4] not in views["mycert"]  # excluded from its own group
    assert obj[10] not in views["cisa"] and obj[11] in views["krcert"]  # every marking must admit
    assert obj[19] in views["krcert"] and obj[19] not in views["cisa"]  # a suspended originator's object stays
    assert views["cisa"][obj[6]] == "2024-05-01T00:00:00.000Z"  # only the originator adds versions
    assert not {obj[n] for n in (8, 9, 12, 13, 20)} & set(views["krcert"])  # refused at publication
    bravo = default_view(app, keys["cisa"], uuids["bravo"])
    assert obj[15] in bravo and obj[14] not in bravo  # the collection's maximum was lowered to AMBER
    charlie = default_view(app, keys["singcert"], uuids["charlie"])
    assert set(charlie) == {obj[17]}  # malware is no longer allowed there
    fb = {s.n: s.id for s in HAND_BUILT.feedback}
    assert set(default_view(app, keys["krcert"], uuids[FEEDBACK])) == {fb[0], fb[1], fb[4], fb[5]}
    assert set(default_view(app, keys["cisa"], uuids[FEEDBACK])) == {fb[0], fb[4]}
    assert default_view(app, keys["mycert"], uuids[FEEDBACK]) == {}
    body = f.Client(app.test_client(), keys["mycert"]).get(collection_url(uuids["alpha"]) + "objects/").get_json()
    (agg,) = [o for o in body["objects"] if o["type"] == "sighting" and o["sighting_of_ref"] == obj[0]]
    assert (agg["count"], agg["x_cti_hub_false_positives"]) == (2, 1) and "where_sighted_refs" not in agg
    assert fb[4] in views["singcert"] and fb[4] not in views["mycert"]  # shared at AMBER, beside an AMBER object
    assert fb[5] in views["jpcert"] and fb[5] not in views["singcert"]  # beside the AMBER+STRICT version


# --------------------------------------------------------------------- known problems


def test_marking_refused_in_its_own_envelope_breaks_nothing(make_app):
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        krcert = f.add_partner(s, "krcert", "KR")
        f.add_partner(s, "cisa", "US")
        f.add_partner(s, "singcert", "SG")
        only_indicators = f.add_collection(s, f.add_root(s, ROOT), "ind", types=["indicator"])
        publisher, col_uuid = krcert.id, only_indicators.uuid
    marking = f.sharing_marking(M_CISA, partners=["cisa"])  # a marking-definition is not allowed here
    ingest.ingest_envelope(hub, publisher, col_uuid, [marking, f.indicator(1, markings=[M_CISA])])
    url = f"/{ROOT}/collections/{col_uuid}/objects/"
    outsider = f.Client(app.test_client(), f.key_for(hub, "singcert")).get(url)
    assert outsider.status_code == 200, outsider.get_data()
    assert "objects" not in outsider.get_json()
    assert f.Client(app.test_client(), f.key_for(hub, "cisa")).get(url).status_code == 200


def test_versioning_a_hidden_object_looks_like_a_new_id_and_changes_nothing(make_app):
    """A post under an id the poster cannot see is answered exactly like a post of a never-held id.

    It is stored as the poster's own quarantined copy, visible to the poster alone and flagged in the
    audit trail; the originator's object, and what everyone else receives, stay as they were.
    """
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        krcert = f.add_partner(s, "krcert", "KR")
        f.add_partner(s, "cisa", "US")
        f.add_partner(s, "jpcert", "JP")
        root = f.add_root(s, ROOT)
        private = f.add_collection(s, root, "private", readers=["partner:krcert"], writers=["partner:krcert"])
        shared = f.add_collection(s, root, "shared")
        publisher, private_uuid, shared_uuid = krcert.id, private.uuid, shared.uuid
    hidden = f.indicator(1)
    assert ingest.ingest_envelope(hub, publisher, private_uuid, [hidden]).successes
    cisa = f.Client(app.test_client(), f.key_for(hub, "cisa"))
    later = {"modified": "2024-06-01T00:00:00.000Z", "name": "probe"}
    url = f"/{ROOT}/collections/{shared_uuid}/objects/"
    probes = [{**obj, **later} for obj in (hidden, f.indicator(2))]
    statuses = [cisa.post(url, [probe]).get_json() for probe in probes]
    assert [(s["success_count"], s["failure_count"]) for s in statuses] == [(1, 0), (1, 0)], statuses
    assert {o["id"] for o in cisa.get(url).get_json()["objects"]} == {p["id"] for p in probes}
    jp = f.Client(app.test_client(), f.key_for(hub, "jpcert"))
    assert [o["id"] for o in jp.get(url).get_json()["objects"]] == [probes[1]["id"]]
    kr = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    assert [o["id"] for o in kr.get(url).get_json()["objects"]] == [probes[1]["id"]]
    mine = kr.get(f"/{ROOT}/collections/{private_uuid}/objects/{hidden['id']}/").get_json()["objects"]
    assert mine == [hidden]
    with hub.session(write=False) as s:
        flagged = s.scalars(select(models.AuditEvent.target).where(models.AuditEvent.action == "object.quarantined"))
        assert list(flagged) == [hidden["id"]]
