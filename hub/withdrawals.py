"""Withdrawals: objects that leave a partner's view, and administrators' recalls.

An object is *withdrawn* from a partner's view of a collection when the partner could see some
version of it and now sees none: a rule change narrowed its view (``rules``), the originator deleted
it (``deleted``), or an administrator recalled it (``recalled``); or when enough partners reported an
indicator as a false positive and its collection withdraws it from the blocklists (``false_positive``,
:mod:`hub.feedback`: the indicator stays in the partner's view, the blocklists leave it out). Each
withdrawal is one row per (partner, collection, object) with a position from the hub clock, so the
feeds list it to that partner, and only to that partner, after the same ``since`` cursor as new objects.

Who could see an object is decided as for an active partner: suspending a partner withdraws nothing
(it receives nothing while suspended, and the same view on reactivation), but a narrowing that
happens while it is suspended is still recorded. The hub's own partner row never reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import ledger, policy
from hub.progress import Report, silent
from hub.runtime import Hub
from hub.store import auditlog, clock, reads, recalls, snapshots, writes

# What a partner already had of an object and may be shown again in its feed's withdrawal list.
SUMMARY_FIELDS = ("name", "pattern", "pattern_type", "valid_from", "valid_until", "modified", "confidence")


def _view(snap: snapshots.Snapshot, partner_pk: int, collection: snapshots.CollectionInfo) -> policy.ReadFilter:
    partner = replace(snap.partners[partner_pk], active=True)
    return policy.compile_read(snap.world, partner, collection.rules, snap.restriction_sets, snap.definitions.values())


def _readers(snap: snapshots.Snapshot) -> list[int]:
    return [pk for pk, row in snap.partner_rows.items() if row.identity_id != snap.hub_identity]


def _rows(
    partner_pk: int, collection_pk: int, versions: Iterable[Any], reason: str, at_us: int, recall_id: int | None = None
) -> list[dict]:
    """One withdrawal row per object, described by the newest of ``versions`` (all seen by the partner)."""
    newest: dict[str, Any] = {}
    for v in versions:
        if v.stix_id not in newest or v.version_us > newest[v.stix_id].version_us:
            newest[v.stix_id] = v
    out = []
    for stix_id in sorted(newest):
        v = newest[stix_id]
        obj = orjson.loads(v.raw)
        summary = {k: obj[k] for k in SUMMARY_FIELDS if k in obj}
        out.append(
            {
                "at_us": at_us,
                "partner_id": partner_pk,
                "collection_id": collection_pk,
                "stix_id": stix_id,
                "object_type": v.type,
                "reason": reason,
                "tlp": v.tlp,
                "originator_id": v.originator_id,
                "summary": orjson.dumps(summary).decode(),
                "recall_id": recall_id,
            }
        )
    return out


def after_rule_change(
    session: Session, before: snapshots.Snapshot, after: snapshots.Snapshot, progress: Report = silent
) -> int:
    """Record what a change of the sharing rules took out of each partner's view; return the rows added."""
    rows: list[dict] = []
    now = clock.now_us()
    for done, collection in enumerate(after.collections.values()):
        progress("withdrawals", done, len(after.collections), unit="collections")
        old_collection = before.collections.get(collection.uuid)
        if old_collection is None:
            continue
        for partner_pk in _readers(after):
            if partner_pk not in before.partners:
                continue  # a new partner had nothing to lose
            old = _view(before, partner_pk, old_collection)
            new = _view(after, partner_pk, collection)
            if not old.readable or old == new:
                continue
            lost = reads.removed_from_view(session, collection.pk, partner_pk, new, old)
            rows += _rows(partner_pk, collection.pk, lost, "rules", now)
    progress("withdrawals", len(after.collections), len(after.collections), unit="collections")
    return recalls.add_withdrawals(session, rows)


def before_delete(
    session: Session,
    snap: snapshots.Snapshot,
    collection: snapshots.CollectionInfo,
    stix_id: str,
    version_pks: Iterable[int],
) -> list[dict]:
    """Return the withdrawal rows a deletion will cause: partners that see the object now and will see none of it.

    Call before deleting (it reads the versions), store the rows with ``recalls.add_withdrawals`` after.
    """
    deleted = set(version_pks)
    rows: list[dict] = []
    now = clock.now_us()
    for partner_pk in _readers(snap):
        view = _view(snap, partner_pk, collection)
        if not view.readable:
            continue
        seen = reads.visible_versions(session, collection.pk, stix_id, partner_pk, view)
        if seen and all(v.pk in deleted for v in seen):
            rows += _rows(partner_pk, collection.pk, seen, "deleted", now)
    return rows


def for_false_positive(
    session: Session, snap: snapshots.Snapshot, collection: snapshots.CollectionInfo, stix_id: str
) -> list[dict]:
    """Return the withdrawal rows (reason ``false_positive``) of an indicator flagged by its collection's
    false-positive threshold: one per partner that sees it there (see :mod:`hub.feedback`)."""
    rows: list[dict] = []
    now = clock.now_us()
    for partner_pk in _readers(snap):
        view = _view(snap, partner_pk, collection)
        if view.readable:
            seen = reads.visible_versions(session, collection.pk, stix_id, partner_pk, view)
            rows += _rows(partner_pk, collection.pk, seen, "false_positive", now)
    return rows


@dataclass(frozen=True)
class RecallResult:
    """A recorded recall: its id and the partners notified."""

    id: int
    recipients: tuple[str, ...]


def recall(
    session: Session, snap: snapshots.Snapshot, stix_id: str, actor: str, reason: str = "", source: str = ""
) -> RecallResult:
    """Recall an object from every partner the delivery ledger says received any version of it.

    Records the recall, one notice per recipient, an audit event and, per recipient and collection, a
    withdrawal its feeds list. Raises NotFound when the hub holds no such object.
    """
    receipts = ledger.who_received(session, snap, stix_id)
    by_version = {(v.collection_id, v.version): v for v in writes.versions_by_id(session, stix_id)}
    got: dict[tuple[int, int], list[Any]] = {}
    for r in receipts:
        partner_pk = snap.by_slug.get(r.partner)
        version = by_version.get((r.collection_pk, r.version))
        if partner_pk is not None and version is not None:
            got.setdefault((partner_pk, r.collection_pk), []).append(version)
    partners = sorted({pk for pk, _ in got}, key=lambda pk: snap.partners[pk].slug)
    notices = [(pk, snap.partners[pk].slug) for pk in partners]
    now = clock.now_us()
    recall_id = recalls.save_recall(session, stix_id, actor, reason, now, notices)
    rows: list[dict] = []
    for (partner_pk, collection_pk), versions in sorted(got.items()):
        rows += _rows(partner_pk, collection_pk, versions, "recalled", now, recall_id)
    recalls.add_withdrawals(session, rows)
    recipients = tuple(slug for _, slug in notices)
    auditlog.audit(
        session,
        actor,
        "object.recall",
        stix_id,
        {"recall": recall_id, "reason": reason, "recipients": list(recipients)},
        source=source,
    )
    return RecallResult(recall_id, recipients)


def for_feed(hub: Hub, partner_pk: int, collection_pk: int, after: int | None, upto: int) -> list:
    """Return a partner's withdrawals in a collection for one feed response, and record them as served.

    Only the first listing is written (as the ledger writes: without waiting for the disk), so a
    SIEM polling with ``include=withdrawn`` costs a write only when something new is listed.
    """
    with hub.session(write=False) as session:
        rows = recalls.withdrawals_for(session, partner_pk, collection_pk, after, upto)
    fresh = [r for r in rows if r.served_us is None]
    if fresh:
        with hub.session(relaxed=True) as session:
            recalls.mark_withdrawals_served(
                session,
                partner_pk,
                [r.id for r in fresh],
                [r.recall_id for r in fresh if r.recall_id is not None],
                clock.now_us(),
            )
    return rows


def recalls_of(session: Session, stix_id: str) -> list[dict[str, Any]]:
    """Past recalls of an object for display, newest first."""
    return [{"recall": r, "notices": notices} for r, notices in recalls.recalls_of(session, stix_id)]
