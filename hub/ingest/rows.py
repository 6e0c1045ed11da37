"""Ownership and duplicates judged under the writer lock, and the version rows of what passes.

An id belongs to the partner that first published it (``object_origins``); what another partner may
do under it is decided in ``_row_for``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import formats, policy
from hub.config import DEFAULTS
from hub.errors import TooManyRequests
from hub.ids import stix_key
from hub.ingest.prepare import IngestResult, Prepared
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import auditlog, clock, reads, snapshots, writes


@dataclass
class _Stored:
    """What storing one envelope has seen so far: what is stored, what it added, restriction sets.

    ``raws`` is keyed by (id, version_us, poster): poster 0 for the originator's versions, the
    poster's pk for its quarantined copies (see ``_row_for``).
    """

    raws: dict[tuple[str, int, int], str]
    first_tlp: dict[tuple[str, int], int]
    added: set[tuple[str, int, int]] = field(default_factory=set)
    restriction_sets: dict[tuple[str, ...], int] = field(default_factory=dict)
    seen_elsewhere: set[str] = field(default_factory=set)
    quotas: _Quotas | None = None


@dataclass
class _Quotas:
    """A partner's quotas on sharing markings and restriction sets, counted once per envelope when first needed.

    Each marking and each combination of markings is work in every partner's reads and in every rebuild
    of the sharing snapshot, so a partner may create only so many (``max_*_per_partner``; 0: no limit).
    """

    settings: dict[str, Any]
    used: dict[str, int] = field(default_factory=dict)

    def charge(self, session: Session, partner: policy.Partner, what: str) -> None:
        """Count one more ``what`` ("sharing_markings" or "restriction_sets"), or refuse the whole envelope."""
        setting = f"max_{what}_per_partner"
        limit = self.settings.get(setting, DEFAULTS[setting])
        if not limit:
            return
        if what not in self.used:
            count = writes.sharing_markings_of if what == "sharing_markings" else writes.restriction_sets_created_by
            self.used[what] = count(session, partner.id)
        if self.used[what] >= limit:
            # No Retry-After: waiting does not lift a quota. The transaction rolls back: nothing is stored.
            raise TooManyRequests(
                f"quota exceeded: {partner.slug} {_QUOTA_WORDS[what].format(limit)} ({setting}); "
                "nothing of this envelope was stored: reuse the sharing markings and combinations already "
                "defined, or ask the hub's operator to raise the quota"
            )
        self.used[what] += 1


_QUOTA_WORDS = {
    "sharing_markings": "has defined {:,} sharing markings, the most a partner may",
    "restriction_sets": "has created {:,} restriction sets (distinct combinations of sharing markings), "
    "the most a partner may",
}


def store_all(
    session: Session,
    hub: Hub,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    prepared: list[Prepared],
    result: IngestResult,
    read_only: bool,
) -> list[dict]:
    """Check ownership and duplicates under the writer lock, then insert with fresh ``date_added`` values.

    Return the rows inserted (each with its ``date_added``).
    """
    clock.lock_clock(session)  # ownership and duplicates are judged under the writer lock
    ids = [p.obj["id"] for p in prepared]
    creators = {c for p in prepared if isinstance(c := p.obj.get("created_by_ref"), str)} - set(snap.identities)
    if partner.kind == "hub":
        creators = set()  # a peer hub relays objects created by others
    known = writes.publication(session, collection.pk, ids, also_origins=creators)
    owners = known.origins
    foreign_creators = {
        c for c in creators if stix_key(c) in owners and not _own_or_reference(snap, partner, owners[stix_key(c)])
    }
    creators_seen = (
        reads.readable_ids(session, snap, partner.id, foreign_creators, own=False) if foreign_creators else set()
    )
    foreign = {i for i in ids if owners.get(stix_key(i), partner.id) != partner.id}
    stored = _Stored(
        known.raws,
        known.first_tlp,
        seen_elsewhere=reads.readable_ids(session, snap, partner.id, foreign, own=False) if foreign else set(),
        quotas=_Quotas(hub.settings),
    )
    earlier = {stix_id for stix_id, _, _ in stored.raws}
    rows, terms, saved_markings, refused_markings, reserved = [], [], set(), set(), set()
    refused_here = {failure["id"] for failure in result.failures} & creators  # identities refused in _prepare
    for item in prepared:
        missing = [i for i in item.sharing_ids if i in refused_markings]
        if missing:
            result.failures.append({**item.key, "message": f"unknown marking {missing[0]} (refused in this envelope)"})
            continue
        creator = item.obj.get("created_by_ref")
        if creator in refused_here:
            result.failures.append({**item.key, "message": f"created_by_ref {creator} was refused in this envelope"})
            continue
        creator_owner = owners.get(stix_key(creator)) if creator in creators else None
        foreign_creator = creator_owner is not None and not _own_or_reference(snap, partner, creator_owner)
        if foreign_creator and creator in creators_seen:
            result.failures.append(
                {
                    **item.key,
                    "message": f"created_by_ref {creator} is another partner's "
                    "identity; publish under your own identity",
                }
            )
            continue
        owner = owners.get(stix_key(item.obj["id"]))
        row = _row_for(
            session, snap, partner, collection, item, owner, stored, result, read_only, quarantine=foreign_creator
        )
        if row is None:
            if item.marking_row is not None and item.marking_row["id"] not in saved_markings:
                refused_markings.add(item.marking_row["id"])
            continue
        if item.marking_row is not None and item.marking_row["id"] not in saved_markings:
            if item.marking_row["kind"] in ("sharing", "acs") and stored.quotas is not None:
                stored.quotas.charge(session, partner, "sharing_markings")
            writes.save_marking(session, item.marking_row)
            saved_markings.add(item.marking_row["id"])
        if not row["quarantined"]:
            owners.setdefault(stix_key(item.obj["id"]), partner.id)
            if creator in creators and stix_key(creator) not in owners:
                owners[stix_key(creator)] = partner.id
                reserved.add(creator)
        key = (item.obj["id"], item.version_us, partner.id if row["quarantined"] else 0)
        stored.raws[key] = row["raw"]
        stored.added.add(key)
        rows.append(row)
        terms.append(item.terms)
    start = writes.add_versions(session, rows, terms)
    # An identity id named as creator and never published is reserved for the partner naming it, so that
    # nobody can publish an identity under it later and be credited with this partner's objects.
    writes.register_origins(
        session, [{"stix_id": c, "originator_id": partner.id, "date_added": start} for c in sorted(reserved)]
    )
    _flag_quarantined(session, partner, collection, [row for row in rows if row["quarantined"]], owners)
    # Objects stored before, or added in several versions here, may now have versions with a newer one.
    added = Counter(row["stix_id"] for row in rows)
    writes.refresh_newer(session, collection.pk, [i for i, n in added.items() if n > 1 or i in earlier])
    return rows


def _own_or_reference(snap: snapshots.Snapshot, partner: policy.Partner, owner: int | None) -> bool:
    """Tell whether an identity with this originator may be named as creator: the publisher's, or the hub's
    reference content (ATT&CK's MITRE identity and the like, which every partner reads)."""
    owner_row = snap.partner_rows.get(owner) if owner is not None else None
    return owner == partner.id or (owner_row is not None and owner_row.slug == snapshots.HUB_SLUG)


def _row_for(
    session: Session,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    item: Prepared,
    owner: int | None,
    stored: _Stored,
    result: IngestResult,
    read_only: bool,
    *,
    quarantine: bool = False,
) -> dict | None:
    """Return the row to insert for one object, or None after recording why not (or that it is a duplicate).

    With ``quarantine`` (the object names as creator another partner's identity that the poster cannot
    see) the object is stored as the poster's quarantined copy, as a post under such an id would be.

    An id belongs to the partner that first published it, for good (deleting it leaves the origin).
    When another partner posts under that id, the outcome depends on what the poster can see:

    - an identical copy of the hub's own reference content (TLP markings, partner identities,
      ATT&CK) is stored as the hub's, as before: every partner reads that content already;
    - if the poster can read the owner's object somewhere, the post is refused with the reason:
      re-posting a copy would widen its audience, and a new version would rewrite another's record
      (an identical copy of a version already in this collection is a harmless duplicate);
    - otherwise the post is stored as the poster's own *quarantined* copy, visible to the poster
      alone and flagged to administrators. To the poster this is exactly what posting a never-held
      id looks like, so the write path reveals nothing about objects it cannot see.
    """
    stix_id = item.obj["id"]
    facts, quarantined, originator = item.facts, False, partner.id
    first = stored.first_tlp.get((stix_key(stix_id), item.version_us))
    owner_row = snap.partner_rows.get(owner) if owner is not None else None
    if (
        owner_row is not None
        and owner != partner.id
        and owner_row.slug == "hub"
        and first is not None
        and writes.holds_copy(session, item.obj, item.version_us)
    ):
        # The hub's reference content is released to every partner: a copy of it widens nothing.
        facts, originator, owner = dataclasses.replace(facts, tlp=TLP(first), originator="hub"), owner_row.id, None
    if owner is not None and owner != partner.id:
        if stix_id in stored.seen_elsewhere:
            here = stored.raws.get((stix_id, item.version_us, 0))
            if (
                here is not None
                and orjson.loads(here) == item.obj
                and policy.can_write(snap.world, partner, collection.rules, facts, read_only_key=read_only)
            ):
                # Already in this collection as published (a federation loop, a SIEM pushing back what it
                # pulled), by a partner that may write it: a duplicate, which widens nothing.
                result.successes.append(item.key)
                result.unchanged.append(item.key)
                return None
            owner_slug = owner_row.slug if owner_row is not None else "?"
            decision = policy.can_write(
                snap.world, partner, collection.rules, facts, read_only_key=read_only, owner=owner_slug
            )
            result.failures.append({**item.key, "message": "; ".join(decision.reasons)})
            return None
        facts, quarantined = dataclasses.replace(facts, quarantined=True), True
    elif quarantine:
        facts, quarantined = dataclasses.replace(facts, quarantined=True), True
    elif first is not None and first > facts.tlp:
        # A version's audience never widens: its effective TLP is at least that of its first publication.
        facts = dataclasses.replace(facts, tlp=TLP(first))
    decision = policy.can_write(snap.world, partner, collection.rules, facts, read_only_key=read_only)
    if not decision:
        result.failures.append({**item.key, "message": "; ".join(decision.reasons)})
        return None
    key = (stix_id, item.version_us, partner.id if quarantined else 0)
    raw_here = stored.raws.get(key)
    if raw_here is not None:
        if orjson.loads(raw_here) == item.obj:
            result.successes.append(_success(item, collection, result))  # an exact duplicate is no error (TAXII 5.5)
            if key not in stored.added:
                result.unchanged.append(item.key)
        else:
            result.failures.append(
                {
                    **item.key,
                    "message": "a different object with this id and version is "
                    "stored; versions are immutable, publish a new version",
                }
            )
        return None
    result.successes.append(_success(item, collection, result))
    restriction = None
    if item.sharing_ids:  # one look-up per distinct set and envelope, not one per object
        restriction = stored.restriction_sets.get(item.sharing_ids)
        if restriction is None:
            restriction = writes.find_restriction_set(session, snap, item.sharing_ids)
            if restriction is None:
                if stored.quotas is not None:
                    stored.quotas.charge(session, partner, "restriction_sets")
                restriction = writes.create_restriction_set(session, item.sharing_ids, partner.id)
            stored.restriction_sets[item.sharing_ids] = restriction
    return {
        "collection_id": collection.pk,
        "stix_id": stix_id,
        "type": item.obj["type"],
        "version": item.key["version"],
        "version_us": item.version_us,
        "spec_version": item.obj.get("spec_version", "2.1"),
        "originator_id": originator,
        "tlp": int(facts.tlp),
        "restriction_set_id": restriction,
        "unknown_markings": bool(facts.unknown_markings),
        "quarantined": quarantined,
        "raw": item.raw,
    }


def _flag_quarantined(
    session: Session,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    rows: list[dict],
    owners: dict[str, int],
) -> None:
    """Tell administrators, in the audit trail, about copies posted under ids another partner owns, or
    naming as creator an identity of another partner that the poster cannot see."""
    for stix_id in sorted({row["stix_id"] for row in rows}):
        owner = owners.get(stix_key(stix_id))
        reason = "created_by_ref" if owner in (None, partner.id) else "id"
        auditlog.audit(
            session,
            partner.slug,
            "object.quarantined",
            stix_id,
            {
                "collection": collection.uuid,
                "owner_id": owner,
                "reason": reason,
                "versions": sum(1 for row in rows if row["stix_id"] == stix_id),
            },
        )


def _success(item: Prepared, collection: snapshots.CollectionInfo, result: IngestResult) -> dict:
    """The status entry of a stored object; an indicator on a warninglist gets a note (status-details ``message``)
    unless the result carries no notes (``IngestResult.notes``)."""
    noted = result.notes and item.obj.get("type") == "indicator"
    note = formats.warninglist_note(item.obj, collection.blocklist) if noted else None
    return item.key if note is None else {**item.key, "message": note}
