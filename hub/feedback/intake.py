"""Feedback posted into a feedback collection: what it is about, who receives it, the copies a reporter shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from hub import policy, stix
from hub.feedback.counts import refresh, releasable_beside
from hub.ids import FEEDBACK_SHARE_ID
from hub.ingest.prepare import IngestResult, Prepared
from hub.store import clock, reads, snapshots, writes
from hub.store import feedback as store

FALSE_POSITIVE_OPINIONS = frozenset({"disagree", "strongly-disagree"})
FEEDBACK_TYPES = ("sighting", "opinion")
# Objects feedback is not about: markings, relationships and feedback itself (decided by the id alone).
NOT_TARGETS = frozenset(
    {"marking-definition", "extension-definition", "language-content", "relationship", *FEEDBACK_TYPES, "note"}
)


@dataclass(frozen=True)
class Target:
    """What one feedback version is about, as ingest worked it out for its reporter."""

    id: str
    originator_pk: int
    kind: str
    count: int
    first_seen_us: int | None
    last_seen_us: int | None
    shared: bool
    revoked: bool
    seen: tuple[Any, ...]  # the newest version the reporter sees in each collection (rows of ``reads.page``)
    sharing_ids: tuple[str, ...] = ()  # the feedback's own sharing markings


def describe(obj: dict) -> tuple[str, str, int, int | None, int | None]:
    """Return (kind, target id, count, first seen, last seen) of a feedback object, or raise ValueError why not."""
    version_us = stix.parse_timestamp(stix.object_version(obj))
    if obj["type"] == "sighting":
        target = obj.get("sighting_of_ref")
        if not isinstance(target, str):
            raise ValueError("a sighting needs sighting_of_ref")
        first = stix.parse_timestamp(obj["first_seen"]) if isinstance(obj.get("first_seen"), str) else version_us
        last = stix.parse_timestamp(obj["last_seen"]) if isinstance(obj.get("last_seen"), str) else first
        count = obj.get("count", 1)
        return "sighting", target, count if isinstance(count, int) else 1, first, last
    refs = obj.get("object_refs")
    if not isinstance(refs, list) or len(refs) != 1 or not isinstance(refs[0], str):
        raise ValueError("feedback opinions name exactly one object in object_refs (post one opinion per object)")
    kind = "false_positive" if obj.get("opinion") in FALSE_POSITIVE_OPINIONS else "opinion"
    return kind, refs[0], 0, version_us, version_us


def resolve(
    session: Session,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    prepared: list[Prepared],
    result: IngestResult,
) -> tuple[list[Prepared], dict[tuple[str, int], Target]]:
    """Check each object posted into a feedback collection; return those kept and what each is about.

    Outside a feedback collection everything is kept as it is (sightings there are ordinary intelligence).
    """
    if not collection.is_feedback:
        return prepared, {}
    kept, targets = [], {}
    for item in prepared:
        try:
            target = _target(session, snap, partner, collection, item)
        except ValueError as exc:
            result.failures.append({**item.key, "message": str(exc)})
            continue
        receiver = snap.partners[target.originator_pk]
        facts = dataclasses.replace(item.facts, feedback_for=receiver.slug)
        if not policy.can_report(snap.world, receiver, collection.rules, facts):
            result.failures.append(
                {
                    **item.key,
                    "message": f"the originator of {target.id} could not receive this feedback here: mark it so "
                    "that it may (a TLP within its clearance, sharing markings that admit it)",
                }
            )
            continue
        item.facts = facts
        targets[(item.obj["id"], item.version_us)] = target
        kept.append(item)
    # A marking-definition refused here is no marking for the objects of this envelope that use it.
    refused = {item.obj["id"] for item in prepared if item.marking_row is not None}
    for item in [i for i in kept if refused & set(i.sharing_ids)]:
        missing = sorted(refused & set(item.sharing_ids))[0]
        result.failures.append({**item.key, "message": f"unknown marking {missing} (refused in this envelope)"})
        kept.remove(item)
        del targets[(item.obj["id"], item.version_us)]
    return kept, targets


def _target(
    session: Session,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    item: Prepared,
) -> Target:
    obj = item.obj
    if obj["type"] not in FEEDBACK_TYPES:
        raise ValueError(
            f"the feedback collection takes sightings and opinions only, not {obj['type']} objects "
            "(publish intelligence in the API root's other collections)"
        )
    kind, target_id, count, first, last = describe(obj)
    what = "sighting_of_ref" if obj["type"] == "sighting" else "object_refs"
    if target_id.split("--", 1)[0] in NOT_TARGETS:
        raise ValueError(f"{what} {target_id}: feedback is about intelligence, not {target_id.split('--')[0]} objects")
    seen = _seen(session, snap, partner, collection.api_root, target_id)
    if not seen:
        # The same words for an id that is hidden from the reporter and one the hub never held.
        raise ValueError(
            f"{what} {target_id}: no object with this id is available to you in API root {collection.api_root}"
        )
    others = [row for row in seen if row.originator_id != partner.id]
    originator = (others or seen)[0].originator_id
    refs = obj.get("object_marking_refs") or []
    return Target(
        target_id,
        originator,
        kind,
        count,
        first,
        last,
        FEEDBACK_SHARE_ID in refs,
        obj.get("revoked") is True,
        tuple(row for row in seen if row.originator_id == originator),
        item.sharing_ids,
    )


def _seen(session: Session, snap: snapshots.Snapshot, partner: policy.Partner, root: str, target_id: str) -> list:
    """The newest version of ``target_id`` the partner reads in each ordinary collection of the API root."""
    out = []
    for c in snap.collections_of(root):
        if c.is_feedback or c.is_reference or not snap.world.granted(c.rules.readers, partner):
            continue
        q = reads.VersionQuery(c.pk, snap.read_filter(partner.id, c), partner.id, ids=(target_id,), limit=5)
        columns = ("pk", "collection_id", "originator_id", "tlp", "restriction_set_id", "unknown_markings", "type")
        rows, _ = reads.page(session, q, (*columns, "quarantined"))
        out += rows
    return out


def after_store(
    session: Session,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    rows: list[dict],
    targets: dict[tuple[str, int], Target],
) -> None:
    """Record the feedback just stored, copy what the reporter shares, and bring the counts up to date."""
    if not targets:
        return
    stored = [row for row in rows if (row["stix_id"], row["version_us"]) in targets]
    if not stored:
        return
    pks = store.version_pks(session, collection.pk, [row["date_added"] for row in stored])
    now = clock.now_us()
    entries = []
    for row in stored:
        t = targets[(row["stix_id"], row["version_us"])]
        entries.append(
            {
                "version_pk": pks[row["date_added"]],
                "collection_id": collection.pk,
                "stix_id": row["stix_id"],
                "kind": t.kind,
                "target_id": t.id,
                "target_originator_id": t.originator_pk,
                "reporter_id": partner.id,
                "count": t.count,
                "first_seen_us": t.first_seen_us,
                "last_seen_us": t.last_seen_us,
                "revoked": t.revoked,
                "shared": t.shared,
                "added_us": now,
            }
        )
    store.save(session, entries)
    _copy_shared(session, snap, partner, [(row, targets[(row["stix_id"], row["version_us"])]) for row in stored])
    refresh(session, snap, collection.api_root, {(t.id, t.originator_pk) for t in targets.values()})


def _copy_shared(session: Session, snap: snapshots.Snapshot, partner: policy.Partner, stored: list) -> None:
    """Store a copy of each shared feedback version where the reporter sees its object, under both their rules."""
    copies = []
    for row, t in stored:
        if not t.shared:
            continue
        for seen in t.seen:
            collection = next(c for c in snap.collections.values() if c.pk == seen.collection_id)
            if seen.quarantined or not releasable_beside(collection, seen.type):
                continue  # a poster's own copy is for it alone; see releasable_beside
            held = writes.stored_versions(session, seen.collection_id, [row["stix_id"]])
            if (row["stix_id"], row["version_us"]) in held:
                continue
            markings = {m.id for m in snap.restriction_sets.get(seen.restriction_set_id, ())}
            markings |= set(t.sharing_ids)
            restriction = None
            if markings:
                restriction = writes.find_restriction_set(session, snap, markings)
                if restriction is None:
                    restriction = writes.create_restriction_set(session, markings, partner.id)
            copy = {**row, "collection_id": seen.collection_id, "tlp": max(row["tlp"], seen.tlp)}
            copy["unknown_markings"] = bool(row["unknown_markings"] or seen.unknown_markings)
            copy["restriction_set_id"] = restriction
            copy.pop("date_added", None)
            copies.append(copy)
    if copies:
        writes.add_versions(session, copies)
        for pk in {c["collection_id"] for c in copies}:
            writes.refresh_newer(session, pk, [c["stix_id"] for c in copies if c["collection_id"] == pk])
