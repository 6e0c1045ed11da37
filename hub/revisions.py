"""Revoke an object, or publish a new version of it, on behalf of its originator.

The panel's administrator acts as the hub for the partner that published the object: the new version
is posted into the same collection through :func:`hub.ingest.ingest_envelope` as that partner, so every
rule of a write applies as it would over TAXII (the partner still writes the collection, the TLP fits,
only the originator adds versions), and the audit event is written by ingest's ``after`` hook in the
same transaction as the version. Only an account with the ``admin`` role revises; objects the hub
publishes itself (reference data, anonymous counts, notes) are not revised here, nor feedback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import ingest, stix
from hub import models as m
from hub.errors import BadRequest, Forbidden, NotFound
from hub.runtime import Hub
from hub.store import auditlog, clock, snapshots, writes

# What a new version keeps from the one it replaces, whatever the edited JSON says.
FIXED = ("type", "id", "spec_version", "created", "created_by_ref")


@dataclass(frozen=True)
class Revised:
    """The version just stored on the originator's behalf."""

    stix_id: str
    collection: str  # "root/alias"
    originator: str
    version: str
    revoked: bool


def newest_own(session: Session, snap: snapshots.Snapshot, stix_id: str, collection_uuid: str) -> m.ObjectVersion:
    """The newest version of ``stix_id`` its originator stored in a collection: the one a revision replaces.

    Raises NotFound when the collection holds no such object and BadRequest when it cannot be revised here.
    """
    info = snap.collections.get(collection_uuid)
    if info is None:
        raise NotFound(f"no collection '{collection_uuid}'")
    if info.is_reference or info.is_feedback:
        raise BadRequest(
            f"collection {info.api_root}/{info.alias} is the {'reference' if info.is_reference else 'feedback'} "
            "collection: the hub maintains what it holds, and its objects are not revised in the panel"
        )
    versions = [
        v
        for v in writes.versions_by_id(session, stix_id)
        if v.collection_id == info.pk and not v.quarantined  # a quarantined copy is its poster's alone
    ]
    if not versions:
        raise NotFound(f"collection {info.api_root}/{info.alias} holds no version of {stix_id}")
    newest = max(versions, key=lambda v: v.version_us)
    originator = snap.partners.get(newest.originator_id)
    if originator is None or originator.slug == snapshots.HUB_SLUG:
        raise BadRequest(f"{stix_id} is published by the hub itself: only a partner's objects are revised here")
    return newest


def revisable(snap: snapshots.Snapshot, versions: list[m.ObjectVersion]) -> list[m.ObjectVersion]:
    """Of an object's stored versions, the newest in each collection that the panel may revise (pure).

    Not in the reference or feedback collection, not a quarantined copy, not the hub's, not revoked.
    """
    by_pk = {c.pk: c for c in snap.collections.values()}
    newest: dict[int, m.ObjectVersion] = {}
    for v in versions:
        info = by_pk.get(v.collection_id)
        if info is None or info.is_reference or info.is_feedback or v.quarantined:
            continue
        if v.collection_id not in newest or v.version_us > newest[v.collection_id].version_us:
            newest[v.collection_id] = v
    hub_pk = snap.by_slug.get(snapshots.HUB_SLUG)
    return [
        v
        for v in sorted(newest.values(), key=lambda v: (by_pk[v.collection_id].api_root, by_pk[v.collection_id].alias))
        if v.originator_id in snap.partners
        and v.originator_id != hub_pk
        and orjson.loads(v.raw).get("revoked") is not True
    ]


def revoke(hub: Hub, stix_id: str, collection_uuid: str, actor: str, role: str, source: str = "") -> Revised:
    """Publish a revoked version of an object in a collection for its originator (STIX ``revoked: true``)."""
    return _revise(hub, stix_id, collection_uuid, actor, role, source, None)


def new_version(
    hub: Hub, stix_id: str, collection_uuid: str, body: str, actor: str, role: str, source: str = ""
) -> Revised:
    """Publish ``body`` (the object's JSON, edited) as the next version of an object for its originator.

    ``modified`` is set by the hub (now, and later than the version it replaces); ``type``, ``id``,
    ``spec_version``, ``created`` and ``created_by_ref`` must stay as they are.
    """
    return _revise(hub, stix_id, collection_uuid, actor, role, source, parse_edit(body))


def parse_edit(body: str) -> dict[str, Any]:
    """The edited object, or BadRequest saying why the text is not one."""
    if not body.strip():
        raise BadRequest("the new version is empty: edit the object's JSON")
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the new version is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest("the new version must be one JSON object, the object itself")
    return obj


def next_modified(previous_us: int) -> str:
    """A ``modified`` of now, in milliseconds, and at least a millisecond after ``previous_us``."""
    at = max(clock.now_us() // 1000 * 1000, (previous_us // 1000 + 1) * 1000)
    return stix.format_timestamp(at)[:-4] + "Z"


def _next_object(current: dict[str, Any], edited: dict[str, Any] | None) -> dict[str, Any]:
    if current.get("revoked") is True:
        raise BadRequest(f"{current['id']} is revoked: a revoked object gets no new version")
    if "modified" not in current:
        raise BadRequest(f"{current['id']} has no 'modified': this kind of object has no versions")
    if edited is None:
        obj = {**current, "revoked": True}
    else:
        changed = [k for k in FIXED if edited.get(k) != current.get(k)]
        if changed:
            raise BadRequest(f"a new version keeps the object's {', '.join(changed)}: change the other properties")
        obj = dict(edited)
    obj["modified"] = next_modified(stix.parse_timestamp(current["modified"]))
    return obj


def _revise(
    hub: Hub,
    stix_id: str,
    collection_uuid: str,
    actor: str,
    role: str,
    source: str,
    edited: dict[str, Any] | None,
) -> Revised:
    if role != "admin":
        raise Forbidden("the auditor role is read-only: only administrators revoke or version an object")
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        current = newest_own(s, snap, stix_id, collection_uuid)
        originator_pk, raw = current.originator_id, current.raw
        originator = snap.partners[originator_pk].slug
        info = snap.collections[collection_uuid]
    obj = _next_object(orjson.loads(raw), edited)
    action = "object.revoke" if edited is None else "object.new_version"
    where = f"{info.api_root}/{info.alias}"

    def audit(session: Session, result: ingest.IngestResult) -> None:
        if result.successes and not result.failures:
            detail = {"collection": collection_uuid, "originator": originator, "version": obj["modified"]}
            auditlog.audit(session, actor, action, stix_id, detail, source=source)

    result = ingest.ingest_envelope(hub, originator_pk, collection_uuid, [obj], after=audit)
    if result.failures:
        reasons = "; ".join(str(f.get("message", "")) for f in result.failures)
        raise BadRequest(f"{originator}'s new version of {stix_id} in {where} was refused: {reasons}")
    return Revised(stix_id, where, originator, obj["modified"], obj.get("revoked") is True)
