"""Anonymous counts of feedback, the hub's aggregate sightings over TAXII, and the false-positive threshold."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import policy, stix, withdrawals
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP
from hub.store import auditlog, clock, recalls, snapshots, writes
from hub.store import feedback as store

MAX_COUNT = 999_999_999  # STIX 2.1: a sighting's count


@dataclass(frozen=True)
class Tally:
    """The anonymous counts about one object: never who reported."""

    sightings: int = 0
    false_positives: int = 0  # distinct partners reporting it as a false positive
    first_seen_us: int | None = None
    last_seen_us: int | None = None

    def __bool__(self) -> bool:
        return bool(self.sightings or self.false_positives)


def tally(entries: Iterable[store.Entry], target_tlp: TLP) -> Tally:
    """Count the current feedback every recipient of a version at ``target_tlp`` may learn of (pure)."""
    counted = [
        e
        for e in entries
        if e.kind in ("sighting", "false_positive")
        and policy.counts_publicly(e.tlp, target_tlp, restricted=e.restricted, unknown_markings=e.unknown_markings)
    ]
    sightings = [e for e in counted if e.kind == "sighting"]
    firsts = [e.first_seen_us for e in sightings if e.first_seen_us is not None]
    lasts = [e.last_seen_us for e in sightings if e.last_seen_us is not None]
    return Tally(
        min(sum(e.count for e in sightings), MAX_COUNT),
        len({e.reporter_pk for e in counted if e.kind == "false_positive"}),
        min(firsts, default=None),
        max(lasts, default=None),
    )


def refresh(session: Session, snap: snapshots.Snapshot, root: str, pairs: Iterable[tuple[str, int]]) -> None:
    """Re-count feedback about these (object, originator) pairs: aggregates over TAXII and false-positive flags."""
    pairs = sorted(set(pairs))
    ordinary = {c.pk: c for c in snap.collections_of(root) if not (c.is_feedback or c.is_reference)}
    if not pairs or not ordinary:
        return
    entries = store.current(session, pairs)
    for target_id, originator_pk in pairs:
        mine = [e for e in entries if (e.target_id, e.originator_pk) == (target_id, originator_pk)]
        for holder in store.holders(session, ordinary, target_id, originator_pk):
            counts = tally(mine, TLP(holder.tlp))
            collection = ordinary[holder.collection_id]
            if releasable_beside(collection, holder.type):
                _publish_aggregate(session, snap, collection, holder, target_id, counts)
            if holder.type == "indicator":
                _judge_threshold(session, snap, collection, target_id, originator_pk, counts)


def releasable_beside(collection: snapshots.CollectionInfo, target_type: str) -> bool:
    """Tell whether a sighting may stand beside an object of ``target_type`` in a collection: a collection
    whose types allow sightings but not the object's would otherwise name an object its readers never get."""
    types = collection.rules.types
    return not types or ("sighting" in types and target_type in types)


def aggregate_id(collection: snapshots.CollectionInfo, target_id: str) -> str:
    return f"sighting--{uuid.uuid5(HUB_NAMESPACE, f'aggregate|{collection.uuid}|{target_id}')}"


def aggregate_object(
    snap: snapshots.Snapshot, collection: snapshots.CollectionInfo, target_id: str, counts: Tally, refs: list, at: str
) -> dict:
    """The hub's anonymous sighting of an object in one collection: how often and when, never by whom."""
    obj: dict[str, Any] = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": aggregate_id(collection, target_id),
        "created": at,
        "modified": at,
        "created_by_ref": snap.hub_identity,
        "sighting_of_ref": target_id,
        "count": counts.sightings,
        "summary": True,
        "description": "Anonymous counts of the partners' sightings and false-positive reports of this object.",
        "x_cti_hub_false_positives": counts.false_positives,
    }
    if counts.first_seen_us is not None and counts.last_seen_us is not None:
        obj["first_seen"] = stix.format_timestamp(counts.first_seen_us)
        obj["last_seen"] = stix.format_timestamp(max(counts.last_seen_us, counts.first_seen_us))
    if refs:
        obj["object_marking_refs"] = refs
    return obj


def _publish_aggregate(
    session: Session,
    snap: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    holder: Any,
    target_id: str,
    counts: Tally,
) -> None:
    hub_pk = snap.by_slug.get(snapshots.HUB_SLUG)
    if hub_pk is None:
        return
    agg_id = aggregate_id(collection, target_id)
    previous_raw = store.newest_raw(session, collection.pk, agg_id)
    previous = orjson.loads(previous_raw) if previous_raw is not None else None
    if previous is None and not counts:
        return
    refs = [r for r in orjson.loads(holder.raw).get("object_marking_refs") or [] if isinstance(r, str)]
    now_ms = clock.now_us() // 1000 * 1000
    if previous is not None:
        now_ms = max(now_ms, stix.parse_timestamp(previous["modified"]) + 1000)
    obj = aggregate_object(snap, collection, target_id, counts, refs, stix.format_timestamp(now_ms)[:-4] + "Z")
    if previous is not None:
        if {**previous, "modified": obj["modified"]} == {**obj, "created": previous["created"]}:
            return
        obj["created"] = previous["created"]
    version = obj["modified"]
    row = {
        "collection_id": collection.pk,
        "stix_id": agg_id,
        "type": "sighting",
        "version": version,
        "version_us": stix.parse_timestamp(version),
        "spec_version": "2.1",
        "originator_id": hub_pk,
        "tlp": holder.tlp,
        "restriction_set_id": holder.restriction_set_id,
        "unknown_markings": bool(holder.unknown_markings),
        "quarantined": False,
        "raw": orjson.dumps(obj).decode(),
    }
    writes.add_versions(session, [row])
    writes.refresh_newer(session, collection.pk, [agg_id])


def _judge_threshold(
    session: Session,
    snap: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    target_id: str,
    originator_pk: int,
    counts: Tally,
) -> None:
    """Flag (and maybe withdraw) an indicator at its collection's threshold; clear the flag below it."""
    threshold = collection.false_positive_threshold
    flag = store.active_flag(session, collection.pk, target_id)
    now = clock.now_us()
    if threshold > 0 and counts.false_positives >= threshold and flag is None:
        withdraw = collection.false_positive_withdraw
        store.add_flag(
            session,
            {
                "collection_id": collection.pk,
                "stix_id": target_id,
                "originator_id": originator_pk,
                "reporters": counts.false_positives,
                "withdrawn": withdraw,
                "flagged_us": now,
            },
        )
        if withdraw:
            recalls.add_withdrawals(session, withdrawals.for_false_positive(session, snap, collection, target_id))
        why = (
            f"{target_id} was reported as a false positive by {counts.false_positives} partners, the threshold of "
            f"collection {collection.api_root}/{collection.alias} (false_positive_threshold {threshold})"
        )
        why += (
            ": it is withdrawn from the collection's blocklists until fewer partners report it"
            if withdraw
            else "; its blocklists still list it (false_positive_withdraw is off)"
        )
        _notify(session, snap, collection, target_id, originator_pk, "Reported as a false positive", why)
    elif flag is not None and (threshold <= 0 or counts.false_positives < threshold):
        store.clear_flag(session, flag.id, now)
        if flag.withdrawn:
            writes.restamp(session, store.version_pks_of(session, collection.pk, target_id))
        why = (
            f"{target_id} is now reported as a false positive by {counts.false_positives} partners, below the "
            f"threshold of collection {collection.api_root}/{collection.alias}"
            + (": it is back in the collection's blocklists" if flag.withdrawn else "")
        )
        _notify(session, snap, collection, target_id, originator_pk, "False-positive flag cleared", why)


def _notify(
    session: Session,
    snap: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    target_id: str,
    originator_pk: int,
    abstract: str,
    content: str,
) -> None:
    """Tell the originator, with a note from the hub in the feedback collection (and the audit trail)."""
    auditlog.audit(
        session,
        snapshots.HUB_SLUG,
        "object.false_positive",
        target_id,
        {"collection": collection.uuid, "note": content},
    )
    feedback = snap.feedback_collection(collection.api_root)
    hub_pk = snap.by_slug.get(snapshots.HUB_SLUG)
    if feedback is None or hub_pk is None:
        return
    at = stix.format_timestamp(clock.now_us() // 1000 * 1000)[:-4] + "Z"
    note = {
        "type": "note",
        "spec_version": "2.1",
        "id": f"note--{uuid.uuid5(HUB_NAMESPACE, f'false-positive|{collection.uuid}|{target_id}|{at}')}",
        "created": at,
        "modified": at,
        "created_by_ref": snap.hub_identity,
        "abstract": abstract,
        "content": content,
        "object_refs": [target_id],
        "labels": ["false-positive"],
    }
    row: dict[str, Any] = {
        "collection_id": feedback.pk,
        "stix_id": note["id"],
        "type": "note",
        "version": at,
        "version_us": stix.parse_timestamp(at),
        "spec_version": "2.1",
        "originator_id": hub_pk,
        "tlp": int(TLP.CLEAR),
        "restriction_set_id": None,
        "unknown_markings": False,
        "quarantined": False,
        "raw": orjson.dumps(note).decode(),
    }
    writes.add_versions(session, [row])
    pk = store.version_pks(session, feedback.pk, [row["date_added"]])[row["date_added"]]
    store.save(
        session,
        [
            {
                "version_pk": pk,
                "collection_id": feedback.pk,
                "stix_id": note["id"],
                "kind": "flag",
                "target_id": target_id,
                "target_originator_id": originator_pk,
                "reporter_id": hub_pk,
                "count": 0,
                "first_seen_us": None,
                "last_seen_us": None,
                "revoked": False,
                "shared": False,
                "added_us": clock.now_us(),
            }
        ],
    )


def tallies(session: Session, rows: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], Tally]:
    """The anonymous counts for feed rows (object id, originator pk, the version's TLP), by (id, originator)."""
    rows = list(rows)
    entries = store.current(session, [(i, o) for i, o, _ in rows])
    by_pair: dict[tuple[str, int], list[store.Entry]] = {}
    for e in entries:
        by_pair.setdefault((e.target_id, e.originator_pk), []).append(e)
    return {(i, o): tally(by_pair.get((i, o), ()), TLP(level)) for i, o, level in rows}
