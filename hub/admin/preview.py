"""Sharing preview: what a partner receives and why, decided by ``policy.can_read`` itself.

The facts come from the stored version rows exactly as the read path sees them:
the effective TLP column, the restriction set (resolved to sharing markings through
the snapshot, a missing marking failing closed), the originator and the
unknown-marking flag. A partner receives, per object id, the newest version the
rules release to it, which is what the TAXII endpoints serve by default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import formats, policy
from hub import models as m
from hub.policy import TLP
from hub.store import snapshots

PREVIEW_LIMIT = 20_000  # versions examined per collection; the panel says when a preview is cut


def blocklist_verdict(collection: snapshots.CollectionInfo | None, raw: str) -> str | None:
    """Why an indicator version is in no blocklist of its collection ("" when listed); None for other objects."""
    obj = orjson.loads(raw)
    if collection is None or obj.get("type") != "indicator":
        return None
    return formats.blocklist_reason(obj, collection.blocklist)


def warninglist_note(collection: snapshots.CollectionInfo | None, raw: str) -> str | None:
    """Which warninglist an indicator version's value is on and what its blocklist does with it; None if none."""
    obj = orjson.loads(raw)
    if collection is None or obj.get("type") != "indicator":
        return None
    return formats.warninglist_note(obj, collection.blocklist)


def named_rules(info: snapshots.CollectionInfo) -> policy.Collection:
    """A collection's rules naming it "root/alias" in their reasons, as the panel names it, not by its UUID."""
    return replace(info.rules, name=f"{info.api_root}/{info.alias}")


def object_facts(snap: snapshots.Snapshot, row: m.ObjectVersion) -> policy.ObjectFacts:
    """Build the rules' view of one stored version."""
    originator = snap.partners[row.originator_id].slug if row.originator_id in snap.partners else ""
    sharing = snap.restriction_sets.get(row.restriction_set_id, ()) if row.restriction_set_id else ()
    if row.restriction_set_id and row.restriction_set_id not in snap.restriction_sets:
        sharing = (policy.SharingMarking(id=f"restriction set {row.restriction_set_id}"),)
    unknown: tuple[str, ...] = ()
    if row.unknown_markings:
        unknown = tuple(_unknown_refs(snap, row.raw)) or ("(unrecognised marking)",)
    return policy.ObjectFacts(
        type=row.type,
        tlp=TLP(row.tlp),
        originator=originator,
        sharing=tuple(sharing),
        unknown_markings=unknown,
        quarantined=bool(row.quarantined),
        defines=snap.definitions.get(row.stix_id),
    )


def _unknown_refs(snap: snapshots.Snapshot, raw: str) -> list[str]:
    obj = orjson.loads(raw)
    refs = list(obj.get("object_marking_refs") or [])
    refs += [gm.get("marking_ref") for gm in obj.get("granular_markings") or [] if isinstance(gm, dict)]
    return [r for r in refs if isinstance(r, str) and r not in snap.markings]


@dataclass(frozen=True)
class Verdict:
    """What one partner gets of one object id in one collection."""

    stix_id: str
    type: str
    tlp: TLP
    originator: str
    latest: m.ObjectVersion
    delivered: m.ObjectVersion | None
    decision: policy.Decision

    @property
    def allowed(self) -> bool:
        return self.delivered is not None

    @property
    def older_version(self) -> bool:
        return self.delivered is not None and self.delivered.pk != self.latest.pk


def _versions_by_object(
    session: Session, collection_pk: int, stix_ids: Iterable[str] | None = None
) -> tuple[dict[str, list[m.ObjectVersion]], bool]:
    stmt = select(m.ObjectVersion).where(m.ObjectVersion.collection_id == collection_pk)
    if stix_ids is not None:
        stmt = stmt.where(m.ObjectVersion.stix_id.in_(list(stix_ids)))
    stmt = stmt.order_by(m.ObjectVersion.date_added).limit(PREVIEW_LIMIT + 1)
    rows = list(session.scalars(stmt))
    cut = len(rows) > PREVIEW_LIMIT
    grouped: dict[str, list[m.ObjectVersion]] = {}
    for row in rows[:PREVIEW_LIMIT]:
        grouped.setdefault(row.stix_id, []).append(row)
    for versions in grouped.values():
        versions.sort(key=lambda r: r.version_us, reverse=True)
    return grouped, cut


def verdict(
    snap: snapshots.Snapshot,
    world: policy.World,
    partner: policy.Partner,
    rules: policy.Collection,
    versions: list[m.ObjectVersion],
) -> Verdict:
    """Decide one object id for one partner: the newest version released, else why the newest is withheld."""
    latest = versions[0]
    first = None
    for row in versions:
        decision = policy.can_read(world, partner, rules, object_facts(snap, row))
        first = first or decision
        if decision:
            return Verdict(latest.stix_id, latest.type, TLP(latest.tlp), _slug(snap, latest), latest, row, decision)
    assert first is not None
    return Verdict(latest.stix_id, latest.type, TLP(latest.tlp), _slug(snap, latest), latest, None, first)


def _slug(snap: snapshots.Snapshot, row: m.ObjectVersion) -> str:
    return snap.partners[row.originator_id].slug if row.originator_id in snap.partners else "?"


def view_as(
    session: Session, snap: snapshots.Snapshot, partner_slug: str, collection_uuid: str
) -> tuple[list[Verdict], bool]:
    """Every object of a collection as ``partner_slug`` would receive it; and whether the preview was cut."""
    partner = snap.partner(partner_slug)
    info = snap.collections[collection_uuid]
    grouped, cut = _versions_by_object(session, info.pk)
    rules = named_rules(info)
    verdicts = [verdict(snap, snap.world, partner, rules, versions) for versions in grouped.values()]
    verdicts.sort(key=lambda v: v.latest.date_added, reverse=True)
    return verdicts, cut


@dataclass(frozen=True)
class Audience:
    """Who can see one object in one collection."""

    collection: snapshots.CollectionInfo
    verdicts: list[tuple[policy.Partner, Verdict]]


def who_can_see(session: Session, snap: snapshots.Snapshot, stix_id: str) -> list[Audience]:
    """Every collection holding ``stix_id`` and, in each, every partner's verdict."""
    holders = session.scalars(
        select(m.ObjectVersion.collection_id).where(m.ObjectVersion.stix_id == stix_id).distinct()
    ).all()
    by_pk = {c.pk: c for c in snap.collections.values()}
    partners = sorted((p for p in snap.partners.values() if p.kind != "hub"), key=lambda p: p.slug)
    out = []
    for pk in sorted(holders):
        info = by_pk.get(pk)
        if info is None:
            continue
        grouped, _ = _versions_by_object(session, pk, [stix_id])
        versions = grouped[stix_id]
        rules = named_rules(info)
        out.append(Audience(info, [(p, verdict(snap, snap.world, p, rules, versions)) for p in partners]))
    return out


@dataclass(frozen=True)
class Impact:
    """One partner's gain or loss in one collection under a proposed change."""

    partner: str
    collection: str
    gained: list[str]
    lost: list[str]


def what_if(
    session: Session,
    snap: snapshots.Snapshot,
    *,
    world: policy.World | None = None,
    partners: Mapping[int, policy.Partner] | None = None,
    rules: Mapping[str, policy.Collection] | None = None,
) -> list[Impact]:
    """Compare what every partner receives now with what it would receive under changed rules.

    ``world`` replaces the trust groups, ``partners`` replaces partners by primary key and
    ``rules`` replaces collections' rules by collection id; everything else stays as stored.
    """
    after_world = world or snap.world
    after_partners = {**snap.partners, **(partners or {})}
    after_rules = dict(rules or {})
    out = []
    for info in sorted(snap.collections.values(), key=lambda c: (c.api_root, c.alias)):
        new_rules = after_rules.get(info.uuid, info.rules)
        grouped, _ = _versions_by_object(session, info.pk)
        if not grouped:
            continue
        for pk, before in sorted(snap.partners.items(), key=lambda kv: kv[1].slug):
            if before.kind == "hub":
                continue
            after = after_partners[pk]
            gained, lost = [], []
            for stix_id, versions in grouped.items():
                now = verdict(snap, snap.world, before, info.rules, versions).allowed
                then = verdict(snap, after_world, after, new_rules, versions).allowed
                if now and not then:
                    lost.append(stix_id)
                elif then and not now:
                    gained.append(stix_id)
            if gained or lost:
                out.append(Impact(before.slug, f"{info.api_root}/{info.alias}", sorted(gained), sorted(lost)))
    return out
