"""The sharing rules: who may read and who may write which object version.

Pure functions over plain values: no Flask, no SQL. Every decision returns a
``Decision`` carrying the reasons, so the TAXII backend, the status resource, the
admin preview and the CLI all explain a verdict with the same words.

Evaluation order for a read (a partner P, a collection C, an object version O);
the first failing step denies, and every failing step is listed in the reasons:

1. P is active and reads C (directly, through a trust group, or "*").
2. O's type is allowed in C (an empty type list allows every type).
3. effective TLP(O) <= C.max_tlp and <= P.clearance.
4. TLP:RED: P is named as a partner in a sharing marking on O.
5. Every sharing marking on O admits P (union of its partners, groups and
   countries) and none excludes P; every ACS 3.0 marking on O admits P
   (nationality, organisation, categories and access privileges, see :mod:`hub.acs`).
6. O carries no marking the hub does not understand.
7. P is a peer hub (kind ``hub``): O is below TLP:AMBER+STRICT, no sharing
   marking on O forbids federation and every ACS marking's further sharing admits P;
   other objects never leave through federation.
8. O is the definition of a partner's sharing marking M: M admits P (and, for a
   peer hub, does not forbid federation). A marking names its audience, so its
   definition is released to the partners who can see an object that uses it,
   which are exactly the partners it admits (every sharing marking on an object
   must admit its reader), and to no one else; its own TLP and markings apply as
   for any object. TLP and statement markings, and the hub's ready-made group
   markings, are released by steps 1-7 alone.
9. C is the API root's feedback collection: O is a sighting or opinion about an object X, and P is the
   originator of X (``feedback_for``). Feedback goes to its reporter and to the originator of what it
   is about, and to no one else; the recipients of X receive it only as anonymous counts
   (``counts_publicly``), or, when the reporter chose so, as a copy in X's own collections under both
   its rules and X's (see :mod:`hub.feedback`).

The originator of O always sees O in a collection it reads (steps 2-6 are
skipped for it). ``compile_read`` turns the same steps into a ``ReadFilter``:
a handful of values that ``hub.store`` turns into one SQL WHERE clause; the
property tests check that the filter and ``can_read`` agree on every object.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from hub import acs

EVERYONE = "*"


class TLP(enum.IntEnum):
    """Traffic Light Protocol levels, ordered from least to most restrictive."""

    CLEAR = 0
    GREEN = 1
    AMBER = 2
    AMBER_STRICT = 3
    RED = 4

    @property
    def label(self) -> str:
        return "TLP:" + self.name.replace("_", "+")

    @classmethod
    def parse(cls, text: str) -> TLP:
        """Read a TLP name as operators write it: ``amber+strict``, ``TLP:WHITE``, ``RED``."""
        name = text.strip().upper().removeprefix("TLP:").replace("+", "_").replace("-", "_")
        if name == "WHITE":
            name = "CLEAR"
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown TLP level {text!r} (use CLEAR, GREEN, AMBER, AMBER+STRICT or RED)") from None


@dataclass(frozen=True)
class Partner:
    """What the rules need to know about a partner."""

    id: int
    slug: str
    country: str = ""
    clearance: TLP = TLP.RED
    active: bool = True
    kind: str = "cert"
    # ACS 3.0 attributes (hub.acs): the partner's organisation token and shareability/entity categories.
    acs_organization: str = ""
    acs_shareability: frozenset[str] = frozenset()
    acs_entity: frozenset[str] = frozenset()


@functools.lru_cache(maxsize=4096)
def acs_recipient(partner: Partner) -> acs.Recipient:
    """What the ACS rules know about a partner: its nationality comes from its country."""
    return acs.Recipient(
        slug=partner.slug,
        nationality=acs.nationality(partner.country),
        organization=partner.acs_organization,
        shareability=partner.acs_shareability,
        entity=partner.acs_entity,
        peer=partner.kind == "hub",
    )


@dataclass(frozen=True)
class TrustGroup:
    """A named set of partners: explicit members plus every partner of the listed countries."""

    slug: str
    members: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()

    def admits(self, partner: Partner) -> bool:
        return partner.slug in self.members or (partner.country.upper() in self.countries)


@dataclass(frozen=True)
class Grants:
    """Who may read (or write) a collection: partner slugs, group slugs, or everyone."""

    partners: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    everyone: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Grants:
        """Read ``["*", "group:asean", "partner:cisa"]``; a bare name means a partner."""
        partners: set[str] = set()
        groups: set[str] = set()
        everyone = False
        for entry in entries:
            if entry == EVERYONE:
                everyone = True
            elif entry.startswith("group:"):
                groups.add(entry.removeprefix("group:"))
            else:
                partners.add(entry.removeprefix("partner:"))
        return cls(frozenset(partners), frozenset(groups), everyone)

    def entries(self) -> list[str]:
        out = [EVERYONE] if self.everyone else []
        out += [f"group:{g}" for g in sorted(self.groups)]
        out += [f"partner:{p}" for p in sorted(self.partners)]
        return out


@dataclass(frozen=True)
class Collection:
    """The rules a collection carries; ``name`` is how reasons name it (the panel's "root/alias"), else ``id``."""

    id: str
    max_tlp: TLP = TLP.RED
    default_tlp: TLP = TLP.AMBER
    types: frozenset[str] = frozenset()
    readers: Grants = Grants()
    writers: Grants = Grants()
    feedback: bool = False  # the API root's feedback collection (step 9)
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.id


@dataclass(frozen=True)
class SharingMarking:
    """An originator's restriction on who may receive an object: the hub's sharing marking, or an ACS one.

    A hub sharing marking admits the union of ``partners``, ``groups`` and ``countries``; an ACS 3.0
    marking (``acs`` set, the rest empty) admits whom :func:`hub.acs.denials` does not refuse.
    """

    id: str
    partners: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    exclude_partners: frozenset[str] = frozenset()
    no_federation: bool = False
    acs: acs.AcsRules | None = None


@dataclass(frozen=True)
class ObjectFacts:
    """What the rules need to know about one object version."""

    type: str
    tlp: TLP
    originator: str
    sharing: tuple[SharingMarking, ...] = ()
    unknown_markings: tuple[str, ...] = ()
    # Posted by ``originator`` under an id another partner owns: that poster's copy, shown to it alone.
    quarantined: bool = False
    # The sharing marking this object is the definition of (a partner's marking-definition), else None.
    defines: SharingMarking | None = None
    # In a feedback collection: the originator of the object this sighting or opinion is about (step 9).
    feedback_for: str | None = None


@dataclass(frozen=True)
class Decision:
    """A verdict and every reason behind it."""

    allowed: bool
    reasons: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed

    def __str__(self) -> str:
        head = "allowed" if self.allowed else "denied"
        return f"{head}: {'; '.join(self.reasons)}" if self.reasons else head


@dataclass(frozen=True)
class World:
    """The sharing configuration the rules run against: groups by slug."""

    groups: Mapping[str, TrustGroup] = field(default_factory=dict)

    def groups_of(self, partner: Partner) -> frozenset[str]:
        return frozenset(slug for slug, group in self.groups.items() if group.admits(partner))

    def granted(self, grants: Grants, partner: Partner) -> bool:
        if not partner.active:
            return False
        if grants.everyone or partner.slug in grants.partners:
            return True
        return any(g in grants.groups and self.groups[g].admits(partner) for g in grants.groups if g in self.groups)

    def marking_admits(self, marking: SharingMarking, partner: Partner) -> bool:
        if marking.acs is not None:
            return not acs.denials(marking.acs, acs_recipient(partner))
        if partner.slug in marking.exclude_partners:
            return False
        if partner.slug in marking.partners or partner.country.upper() in marking.countries:
            return True
        return any(self.groups[g].admits(partner) for g in marking.groups if g in self.groups)


def effective_tlp(levels: Iterable[TLP], default: TLP) -> TLP:
    """Return the most restrictive of an object's TLP levels, or the collection default."""
    found = list(levels)
    return max(found) if found else default


def can_read(world: World, partner: Partner, collection: Collection, obj: ObjectFacts) -> Decision:
    """Decide whether ``partner`` may receive ``obj`` from ``collection``."""
    if not partner.active:
        return Decision(False, ("partner is suspended",))
    if not world.granted(collection.readers, partner):
        return Decision(False, (f"{partner.slug} does not read collection {collection.label}",))
    if obj.originator == partner.slug:
        return Decision(True, ("originator sees its own objects",))
    if obj.quarantined:
        return Decision(False, ("a copy posted under another partner's object id is visible to its poster alone",))
    if collection.feedback and obj.feedback_for != partner.slug:
        return Decision(False, ("feedback goes only to its reporter and to the originator of the object it is about",))
    reasons = _content_reasons(world, partner, collection, obj)
    if reasons:
        return Decision(False, tuple(reasons))
    return Decision(True, (f"{obj.tlp.label} within clearance and every sharing marking admits {partner.slug}",))


def _content_reasons(world: World, partner: Partner, collection: Collection, obj: ObjectFacts) -> list[str]:
    reasons = []
    if collection.types and obj.type not in collection.types:
        reasons.append(f"type {obj.type} is not allowed in collection {collection.label}")
    if obj.tlp > collection.max_tlp:
        reasons.append(f"{obj.tlp.label} above collection maximum {collection.max_tlp.label}")
    if obj.tlp > partner.clearance:
        reasons.append(f"{obj.tlp.label} above partner clearance {partner.clearance.name.replace('_', '+')}")
    if obj.tlp is TLP.RED and not any(partner.slug in m.partners for m in obj.sharing):
        reasons.append(f"TLP:RED and {partner.slug} is not named in a sharing marking")
    for marking in obj.sharing:
        if marking.acs is not None:
            reasons += [f"{reason} ({marking.id})" for reason in acs.denials(marking.acs, acs_recipient(partner))]
        elif partner.slug in marking.exclude_partners:
            reasons.append(f"sharing marking {marking.id} excludes {partner.slug}")
        elif not world.marking_admits(marking, partner):
            reasons.append(f"sharing marking {marking.id} does not admit {partner.slug}")
    for ref in obj.unknown_markings:
        reasons.append(f"unknown marking {ref} (fails closed)")
    if partner.kind == "hub":
        if obj.tlp >= TLP.AMBER_STRICT:
            reasons.append(f"{obj.tlp.label} never leaves through federation")
        reasons += [f"sharing marking {m.id} forbids federation" for m in obj.sharing if m.no_federation]
    if obj.defines is not None and not definition_admits(world, obj.defines, partner):
        reasons.append(
            f"the definition of sharing marking {obj.defines.id} goes only to its publisher and the "
            f"partners it admits, and it does not admit {partner.slug}"
        )
    return reasons


def definition_admits(world: World, marking: SharingMarking, partner: Partner) -> bool:
    """Tell whether a partner may receive the definition of a sharing marking (step 8)."""
    if partner.kind == "hub" and marking.no_federation:
        return False
    return world.marking_admits(marking, partner)


def can_report(world: World, originator: Partner, collection: Collection, obj: ObjectFacts) -> Decision:
    """Decide whether feedback ``obj`` may be stored in feedback collection ``collection``: its originator
    ``originator`` (the receiver, ``obj.feedback_for``) must be able to receive it there (steps 1-6)."""
    if not world.granted(collection.readers, replace(originator, active=True)):
        reasons = [f"{originator.slug} does not read collection {collection.id}"]
    else:
        reasons = _content_reasons(world, originator, collection, obj)
    if reasons:
        return Decision(False, tuple(reasons))
    return Decision(True, (f"{originator.slug} may receive it",))


def counts_publicly(tlp: TLP, target_tlp: TLP, *, restricted: bool, unknown_markings: bool) -> bool:
    """Tell whether a feedback version counts in the anonymous counts every recipient of its object receives.

    Only feedback that every recipient of the object could receive as it stands counts: its TLP at most the
    object's (so within each recipient's clearance and the object's collection), below RED, with no sharing
    marking (``restricted``: it has a restriction set) and no unknown marking. A sighting its reporter marked
    more tightly reaches the originator alone and is counted by no one else.
    """
    return tlp <= target_tlp and tlp < TLP.RED and not restricted and not unknown_markings


def can_write(
    world: World,
    partner: Partner,
    collection: Collection,
    obj: ObjectFacts,
    *,
    read_only_key: bool = False,
    owner: str | None = None,
) -> Decision:
    """Decide whether ``partner`` may write ``obj`` into ``collection``.

    ``owner`` is the originator of earlier versions of the same object id, if any.
    """
    if not partner.active:
        return Decision(False, ("partner is suspended",))
    if read_only_key:
        return Decision(False, ("the API key is read-only",))
    if not world.granted(collection.writers, partner):
        return Decision(False, (f"{partner.slug} does not write collection {collection.label}",))
    reasons = []
    if owner is not None and owner != partner.slug:
        reasons.append(
            "only the originator may publish under this object id (new versions, copies in other "
            "collections, revocation or deletion)"
        )
    if collection.types and obj.type not in collection.types:
        reasons.append(f"type {obj.type} is not allowed in collection {collection.label}")
    if obj.tlp > collection.max_tlp:
        reasons.append(f"{obj.tlp.label} above collection maximum {collection.max_tlp.label}")
    if obj.tlp is TLP.RED and not any(m.partners for m in obj.sharing):
        reasons.append("a TLP:RED object must name its recipients in a sharing marking")
    for ref in obj.unknown_markings:
        reasons.append(f"unknown marking {ref}")
    if reasons:
        return Decision(False, tuple(reasons))
    return _write_allowed(partner.slug, collection.label, obj.tlp, collection.max_tlp)


@functools.lru_cache(maxsize=4096)
def _write_allowed(partner: str, collection: str, tlp: TLP, maximum: TLP) -> Decision:
    """The (immutable) positive verdict, built once per combination: ingest asks for it per object."""
    return Decision(
        True, (f"{partner} writes collection {collection} and {tlp.label} is within its maximum {maximum.label}",)
    )


@dataclass(frozen=True)
class ReadFilter:
    """``can_read`` compiled for one partner and collection, for the SQL read path.

    A version row passes when ``readable`` and either its originator is ``originator``
    or: it is not quarantined, its type is allowed, ``tlp <= max_tlp``, it has no unknown markings, and its
    restriction set (the set of sharing markings it carries; ``None`` for none) is in
    ``admitted_sets`` (below RED) or in ``red_sets`` (at RED), and, when it is the definition of a
    partner's sharing marking, that marking is in ``shown_markings`` (``None``: every definition, as
    filters saved before step 8 existed were applied), and, with ``feedback``, it is feedback about an
    object of ``originator`` (step 9).

    ``admitted_markings`` and ``red_markings`` say the same per marking: a set is admitted when every
    marking it holds is in ``admitted_markings``, and at RED when one is also in ``red_markings``. The SQL
    read path uses these when set (their size follows the markings, not the far more numerous sets).
    """

    readable: bool
    originator: str
    max_tlp: TLP
    types: frozenset[str]
    admitted_sets: frozenset[int]
    red_sets: frozenset[int]
    shown_markings: frozenset[str] | None = frozenset()
    admitted_markings: frozenset[str] | None = None
    red_markings: frozenset[str] | None = None
    feedback: bool = False  # a feedback collection: besides its own, only feedback about the partner's objects


def compile_read(
    world: World,
    partner: Partner,
    collection: Collection,
    restriction_sets: Mapping[int, Iterable[SharingMarking]],
    definitions: Iterable[SharingMarking] = (),
    markings: Iterable[SharingMarking] | None = None,
) -> ReadFilter:
    """Compile the read rules for ``partner`` over every known restriction set and partners' sharing markings.

    ``markings`` (every sharing marking a set may hold) also compiles them per marking, for the SQL path.
    """
    admitted: set[int] = set()
    red: set[int] = set()
    peer = partner.kind == "hub"
    admitted_markings = red_markings = None
    if markings is not None:
        passing = [m for m in markings if not (peer and m.no_federation) and world.marking_admits(m, partner)]
        admitted_markings = frozenset(m.id for m in passing)
        red_markings = frozenset(m.id for m in passing if partner.slug in m.partners)
    for set_id, markings in restriction_sets.items():
        markings = tuple(markings)
        if peer and any(m.no_federation for m in markings):
            continue
        if all(world.marking_admits(m, partner) for m in markings):
            admitted.add(set_id)
            if any(partner.slug in m.partners for m in markings):
                red.add(set_id)
    return ReadFilter(
        readable=partner.active and world.granted(collection.readers, partner),
        originator=partner.slug,
        max_tlp=min(collection.max_tlp, partner.clearance, TLP.AMBER if peer else TLP.RED),
        types=collection.types,
        admitted_sets=frozenset(admitted),
        red_sets=frozenset(red),
        shown_markings=frozenset(m.id for m in definitions if definition_admits(world, m, partner)),
        admitted_markings=admitted_markings,
        red_markings=red_markings,
        feedback=collection.feedback,
    )


def filter_admits(f: ReadFilter, obj: ObjectFacts, restriction_set: int | None) -> bool:
    """Evaluate a ``ReadFilter`` in Python, exactly as the SQL clause does."""
    if not f.readable:
        return False
    if obj.originator == f.originator:
        return True
    if obj.quarantined:
        return False
    if f.feedback and obj.feedback_for != f.originator:
        return False
    if f.types and obj.type not in f.types:
        return False
    if obj.tlp > f.max_tlp or obj.unknown_markings:
        return False
    if obj.defines is not None and f.shown_markings is not None and obj.defines.id not in f.shown_markings:
        return False
    if obj.tlp is TLP.RED:
        return restriction_set is not None and restriction_set in f.red_sets
    return restriction_set is None or restriction_set in f.admitted_sets
