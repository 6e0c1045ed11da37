"""The ingest use case: store a TAXII envelope's objects (and its status resource) in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import auth, feedback, stix, withdrawals
from hub import models as m
from hub.errors import Unprocessable
from hub.ingest.prepare import Checked, IngestResult, hidden_markings, prepare_all
from hub.ingest.rows import store_all
from hub.runtime import Hub
from hub.store import auditlog, clock, recalls, snapshots, writes
from hub.store import feedback as feedback_store

# Called inside the ingest transaction once the envelope is judged and stored (what the panel audits with it).
AfterStore = Callable[[Session, IngestResult], None]


def envelope_objects(body: Any) -> list[Any]:
    """Return the objects of a TAXII envelope (or of a STIX bundle) or raise Unprocessable naming what is wrong.

    A STIX bundle is taken as an envelope of its ``objects``: stix2's ``TAXIICollectionSink`` posts
    bundles, and medallion accepts them. The bundle's own ``id``, ``type`` and ``spec_version`` are
    not stored.
    """
    if not isinstance(body, dict):
        raise Unprocessable("the request body must be a TAXII envelope: a JSON object with an 'objects' list")
    what = "bundle" if body.get("type") == "bundle" else "envelope"
    objects = body.get("objects")
    if not isinstance(objects, list):
        raise Unprocessable(f"the {what} has no 'objects' list")
    if not objects:
        raise Unprocessable(f"the {what}'s 'objects' list is empty")
    return objects


def ingest_envelope(
    hub: Hub,
    partner_pk: int,
    collection_uuid: str,
    objects: list[Any],
    *,
    read_only: bool = False,
    with_status: bool = False,
    checked: Sequence[Checked | None] | None = None,
    after: AfterStore | None = None,
    notes: bool = True,
) -> IngestResult:
    """Validate, check and store an envelope's objects; commit durably before returning.

    With ``with_status`` the TAXII status resource is written in the same transaction,
    so a status exists exactly when its objects do. ``checked`` (one entry per object, None where
    not worked out) carries verdicts computed ahead of time (see ``Checked``). ``after`` runs in the same
    transaction once the objects are stored, so what it writes is committed exactly with them. Without
    ``notes`` the successes carry no warninglist notes (a caller that reports no status does not need them).
    """
    request_us = clock.now_us()
    with hub.session() as session:
        snap = hub.snapshot(session)
        collection = snap.collections[collection_uuid]
        partner = snap.partners[partner_pk]
        result = IngestResult(notes=notes)
        hidden = hidden_markings(session, snap, partner, objects)
        prepared = prepare_all(snap, partner, collection, objects, result, hidden, checked)
        prepared, targets = feedback.resolve(session, snap, partner, collection, prepared, result)
        rows = store_all(session, hub, snap, partner, collection, prepared, result, read_only)
        feedback.after_store(session, snap, partner, collection, rows, targets)
        if after is not None:
            after(session, result)
        if with_status:
            result.status_id = str(uuid.uuid4())
            root_pk = snap.roots[collection.api_root].pk
            writes.save_status(
                session,
                m.Status(
                    id=result.status_id,
                    api_root_id=root_pk,
                    collection_id=collection.pk,
                    partner_id=partner_pk,
                    status="complete",
                    request_us=request_us,
                    total_count=result.total,
                    success_count=len(result.successes),
                    failure_count=len(result.failures),
                    pending_count=0,
                    successes=orjson.dumps(result.successes).decode(),
                    failures=orjson.dumps(result.failures).decode(),
                ),
            )
        return result


def status_resource(row: m.Status) -> dict:
    """Render a stored status as a TAXII status resource (empty lists left out, as TAXII requires)."""
    out: dict[str, Any] = {
        "id": row.id,
        "status": row.status,
        "request_timestamp": stix.format_timestamp(row.request_us),
        "total_count": row.total_count,
        "success_count": row.success_count,
        "failure_count": row.failure_count,
        "pending_count": row.pending_count,
    }
    for name in ("successes", "failures"):
        items = orjson.loads(getattr(row, name))
        if items:
            out[name] = items
    return out


def delete_versions(
    hub: Hub, principal: auth.Principal, collection: snapshots.CollectionInfo, stix_id: str, version_pks: list[int]
) -> int:
    """Delete versions of an object from a collection, on the originator's request."""
    with hub.session() as session:
        clock.lock_clock(session)  # the writer lock: no version of this object is added meanwhile
        gone = withdrawals.before_delete(session, hub.snapshot(session), collection, stix_id, version_pks)
        about = feedback_store.targets_of(session, collection.pk, stix_id) if collection.is_feedback else []
        count = writes.delete_versions(session, collection.pk, stix_id, version_pks)
        recalls.add_withdrawals(session, gone)
        feedback.refresh(session, hub.snapshot(session), collection.api_root, about)
        auditlog.audit(
            session,
            principal.slug,
            "object.delete",
            stix_id,
            {"collection": collection.uuid, "versions": count, "key": principal.key_id},
        )
        return count
