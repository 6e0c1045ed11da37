"""Services: the hub's use cases over the store and the sharing rules.

``Hub`` holds the settings, the engine and the cached sharing snapshot; the
functions below take a session so that callers (TAXII backend, CLI, feeds,
admin panel) decide the unit of work.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub import acs, auth, db, policy, stix, withdrawals
from hub import models as m
from hub.config import DEFAULTS
from hub.errors import BadRequest, NotFound, TooManyRequests, Unprocessable
from hub.ids import stix_key
from hub.models import split_list
from hub.policy import TLP
from hub.store import auditlog, clock, reads, recalls, snapshots, writes

NAMESPACE = uuid.UUID("6f1d5c1e-6b8a-4c1e-9a55-2d0c3b7e9f41")
SHARING_EXTENSION_ID = f"extension-definition--{uuid.uuid5(NAMESPACE, 'sharing-restriction')}"
REFERENCE_CREATED = "2024-01-01T00:00:00.000Z"


class Hub:
    """One hub instance: settings, database and the snapshot cache shared by requests."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.engine = db.make_engine(settings["database_url"])
        self.sessions = db.session_factory(self.engine)
        self.read_sessions = db.read_factory(self.engine)
        self._snapshot_sessions = db.consistent_factory(self.engine)
        self.write_sessions = db.session_factory(self.engine, write=True)
        self.relaxed_sessions = db.session_factory(self.engine, relaxed=True)
        self.pepper: str = settings["secret_key"]
        self._snapshot: snapshots.Snapshot | None = None

    @contextmanager
    def session(self, *, write: bool = True, relaxed: bool = False) -> Iterator[Session]:
        """A unit of work: committed on success, rolled back on error (see ``db.session_factory``)."""
        factory = self.relaxed_sessions if relaxed else self.write_sessions if write else self.sessions
        with db.transaction(factory) as session:
            yield session

    def snapshot(self, session: Session, version: int | None = None) -> snapshots.Snapshot:
        """Return the sharing snapshot, reloading it when any process changed the rules.

        ``version`` is the rules version the caller already read in this unit of work (with its key);
        without it, it is read here.
        """
        if version is None:
            version = snapshots.rules_version(session)
        cached = self._snapshot
        if cached is None or cached.rules_version != version:
            if isinstance(session, db.ReadSession):
                # A read session takes a fresh view per statement: read in one consistent snapshot, in a
                # transaction of its own, so that a configuration change committed halfway through does
                # not mix old group members with new collection readers.
                with db.transaction(self._snapshot_sessions) as consistent:
                    cached = snapshots.load_snapshot(consistent)
            else:
                cached = snapshots.load_snapshot(session)  # the caller's unit of work, its own changes included
            self._snapshot = cached
        return cached


# --------------------------------------------------------------------- ingest


@dataclass
class IngestResult:
    """What happened to each object of an envelope, for the TAXII status resource."""

    successes: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    status_id: str = ""
    # Successes that were already stored byte-for-byte before this envelope (a subset of successes).
    unchanged: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.successes) + len(self.failures)

    def fail(self, obj: Any, index: int, message: str) -> None:
        self.failures.append({**_status_key(obj, index), "message": message})


@dataclass(frozen=True)
class Checked:
    """An object's ``stix.validate`` verdict and its serialised form, worked out ahead of ingest.

    Lets a bulk import validate the next chunk in another process while this one is stored; the
    verdict is the very function ``_prepare`` would call, so the outcome is the same.
    """

    errors: list[str]
    raw: str
    version_us: int | None = None  # stix.parse_timestamp of the object's version, when it is valid


@dataclass
class _Prepared:
    obj: dict
    key: dict
    facts: policy.ObjectFacts
    sharing_ids: tuple[str, ...]
    version_us: int
    raw: str
    marking_row: dict | None = None


def _status_key(obj: Any, index: int) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
        version = obj.get("modified") or obj.get("created")
        return {"id": obj["id"], "version": version if isinstance(version, str) else stix.object_version({})}
    return {"id": f"objects[{index}]", "version": stix.object_version({})}


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
) -> IngestResult:
    """Validate, check and store an envelope's objects; commit durably before returning.

    With ``with_status`` the TAXII status resource is written in the same transaction,
    so a status exists exactly when its objects do. ``checked`` (one entry per object, None where
    not worked out) carries verdicts computed ahead of time (see ``Checked``).
    """
    request_us = clock.now_us()
    with hub.session() as session:
        snap = hub.snapshot(session)
        collection = snap.collections[collection_uuid]
        partner = snap.partners[partner_pk]
        result = IngestResult()
        hidden = _hidden_markings(session, snap, partner, objects)
        prepared = _prepare_all(snap, partner, collection, objects, result, hidden, checked)
        _store_all(session, hub, snap, partner, collection, prepared, result, read_only)
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
        count = writes.delete_versions(session, collection.pk, stix_id, version_pks)
        recalls.add_withdrawals(session, gone)
        auditlog.audit(
            session,
            principal.slug,
            "object.delete",
            stix_id,
            {"collection": collection.uuid, "versions": count, "key": principal.key_id},
        )
        return count


def _hidden_markings(
    session: Session, snap: snapshots.Snapshot, partner: policy.Partner, objects: list[Any]
) -> frozenset[str]:
    """Stored marking ids the envelope names that the publisher cannot read: to it they do not exist.

    A marking is known to a publisher when it defined it, can read it in some collection, or sends it
    whole in the envelope; any other stored marking is treated exactly like a never-defined one, so
    referring to it tells the publisher nothing it could not see.
    """
    named: set[str] = set()
    for obj in objects:
        if not isinstance(obj, dict):
            continue
        refs = obj.get("object_marking_refs")
        if isinstance(refs, list):
            named.update(r for r in refs if isinstance(r, str))
        granular = obj.get("granular_markings")
        if isinstance(granular, list):
            named.update(
                g["marking_ref"] for g in granular if isinstance(g, dict) and isinstance(g.get("marking_ref"), str)
            )
    candidates = {
        r
        for r in named
        if r in snap.markings and stix.marking_tlp(r) is None and snap.markings[r].originator != partner.id
    }
    if not candidates:
        return frozenset()
    return frozenset(candidates - reads.readable_ids(session, snap, partner.id, candidates))


def _prepare_all(
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    objects: list[Any],
    result: IngestResult,
    hidden: frozenset[str] = frozenset(),
    checked: Sequence[Checked | None] | None = None,
) -> list[_Prepared]:
    """Validate every object and work out its markings; markings first so objects can use them."""
    order = sorted(range(len(objects)), key=lambda i: _prepare_rank(objects[i]))
    new_markings: dict[str, snapshots.MarkingInfo] = {}
    prepared = []
    for index in order:
        obj = objects[index]
        try:
            item = _prepare(
                snap, partner, collection, obj, new_markings, hidden, checked[index] if checked is not None else None
            )
        except Unprocessable as exc:
            result.fail(obj, index, exc.message)
            continue
        if item.marking_row is not None:
            row = item.marking_row
            level = TLP(row["tlp"]) if row["tlp"] is not None else None
            new_markings[row["id"]] = snapshots.MarkingInfo(
                row["id"], row["kind"], level, row["raw"], _sharing_from_row(row)
            )
        elif _is_marking(obj) and obj["id"] in snap.markings:
            new_markings[obj["id"]] = snap.markings[obj["id"]]  # sent whole, so the publisher knows it
        prepared.append(item)
    return prepared


def _prepare_rank(obj: Any) -> int:
    """Markings first, then identities, so that objects can rely on those sent in the same envelope."""
    if _is_marking(obj):
        return 0
    return 1 if isinstance(obj, dict) and obj.get("type") == "identity" else 2


def _is_marking(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("type") == "marking-definition"


def _prepare(
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    obj: Any,
    new_markings: dict[str, snapshots.MarkingInfo],
    hidden: frozenset[str] = frozenset(),
    checked: Checked | None = None,
) -> _Prepared:
    if not isinstance(obj, dict):
        raise Unprocessable("not a STIX object (expected a JSON object)")
    errors = stix.validate(obj) if checked is None else checked.errors
    if not errors and "spec_version" not in obj and obj["type"] not in stix.SCO_TYPES:
        # STIX 2.1 requires it on everything but observables; its absence means STIX 2.0 content.
        errors = [f"{obj['id']}: property 'spec_version' is required (STIX 2.0 content must be upgraded to 2.1 first)"]
    if errors:
        raise Unprocessable("invalid STIX 2.1: " + "; ".join(errors[:5]))
    try:
        raw = orjson.dumps(obj).decode() if checked is None else checked.raw
    except orjson.JSONEncodeError as exc:  # e.g. nested deeper than the serialiser goes
        raise Unprocessable(f"cannot store this object: {exc}") from None
    created_by = obj.get("created_by_ref")
    # A peer hub (kind "hub") relays objects created by others, so it may name them; a partner may not.
    if (
        created_by is not None
        and partner.kind != "hub"
        and snap.identities.get(created_by, partner.slug) != partner.slug
    ):
        raise Unprocessable(f"created_by_ref {created_by} names another partner; publish under your own identity")
    if obj["type"] == "identity" and partner.kind != "hub" and obj["id"] not in snap.identities:
        _refuse_claims(snap, partner, obj)
    marking_row = _marking_row(snap, partner, obj) if _is_marking(obj) else None
    levels, sharing_ids, unknown = _classify_markings(snap, obj, new_markings, hidden)
    facts = policy.ObjectFacts(
        type=obj["type"],
        tlp=policy.effective_tlp(levels, collection.rules.default_tlp),
        originator=partner.slug,
        sharing=tuple(_sharing(snap, new_markings, i) for i in sharing_ids),
        unknown_markings=tuple(unknown),
    )
    version = stix.object_version(obj)
    version_us = (
        checked.version_us if checked is not None and checked.version_us is not None else stix.parse_timestamp(version)
    )
    return _Prepared(
        obj, {"id": obj["id"], "version": version}, facts, tuple(sorted(set(sharing_ids))), version_us, raw, marking_row
    )


def _name_key(name: str) -> str:
    """A partner name as impersonation is judged: case and whitespace do not make it another name."""
    return "".join(name.casefold().split())


def _refuse_claims(snap: snapshots.Snapshot, partner: policy.Partner, obj: dict) -> None:
    """Refuse an identity that claims to be another registered partner, by the hub's binding or by name.

    ``x_cti_hub_partner`` is the property the hub's reference identities bind a partner with; a name
    equal to another partner's registered name or id (ignoring case and spaces) would make consumers
    credit that partner with what ``created_by_ref`` attributes to it.
    """
    claimed = obj.get("x_cti_hub_partner")
    if claimed is not None and claimed != partner.slug:
        raise Unprocessable(
            f"identity {obj['id']} claims partner {claimed!r} (x_cti_hub_partner); an identity "
            "may claim only its publisher"
        )
    name = obj.get("name")
    if not isinstance(name, str):
        return
    key = _name_key(name)
    for other in snap.partner_rows.values():
        if other.id != partner.id and key in (_name_key(other.name), _name_key(other.slug)):
            raise Unprocessable(
                f"identity {obj['id']} is named like partner {other.slug!r}; publish identities "
                "under names that are not another partner's"
            )


def _sharing(snap: snapshots.Snapshot, new: dict[str, snapshots.MarkingInfo], marking_id: str) -> policy.SharingMarking:
    info = snap.markings.get(marking_id) or new[marking_id]
    assert info.sharing is not None
    return info.sharing


def _classify_markings(
    snap: snapshots.Snapshot, obj: dict, new: dict[str, snapshots.MarkingInfo], hidden: frozenset[str] = frozenset()
) -> tuple[list[TLP], list[str], list[str]]:
    """Split an object's marking refs (object and granular) into TLP levels, sharing markings and unknown ones."""
    refs = list(obj.get("object_marking_refs") or [])
    refs += [g["marking_ref"] for g in obj.get("granular_markings") or [] if "marking_ref" in g]
    levels, sharing, unknown = [], [], []
    for ref in refs:
        level = stix.marking_tlp(ref)
        info = new.get(ref) or (None if ref in hidden else snap.markings.get(ref))
        if level is None and info is not None:
            level = info.tlp  # a marking under its own id that states a TLP (see stix.stated_tlp)
        if level is not None:
            levels.append(level)
        if info is not None and info.kind in ("sharing", "acs"):
            sharing.append(ref)
        elif level is None and (info is None or info.kind != "statement"):
            unknown.append(ref)
    return levels, sharing, unknown


def _marking_row(snap: snapshots.Snapshot, partner: policy.Partner, obj: dict) -> dict | None:
    """Describe a posted marking-definition for the markings table; refuse tampering with known ones."""
    known = snap.markings.get(obj["id"])
    if known is not None or stix.marking_tlp(obj["id"]) is not None:
        if known is not None and orjson.loads(known.raw) != obj:
            raise Unprocessable(f"{obj['id']} is already defined with different content; markings never change")
        if known is None and not _is_canonical_tlp(obj):
            raise Unprocessable(f"{obj['id']} is a TLP marking id but the content differs from the standard object")
        return None
    ext = (obj.get("extensions") or {}).get(SHARING_EXTENSION_ID)
    acs_ext = (obj.get("extensions") or {}).get(acs.ACS_EXTENSION_ID)
    row: dict[str, Any] = {
        "id": obj["id"],
        "raw": orjson.dumps(obj).decode(),
        "originator_id": partner.id,
        "tlp": None,
        "kind": "other",
    }
    level = stix.stated_tlp(obj)
    if ext is not None:
        row.update(_sharing_columns(snap, ext, obj["id"]))
    elif acs_ext is not None:
        row["kind"] = _acs_kind(obj["id"], acs_ext)
    elif level is not None:
        row["kind"] = "tlp"
    elif stix.is_statement_marking(obj):
        row["kind"] = "statement"
    if level is not None:  # a sharing marking that also states a TLP holds objects to that TLP too
        row["tlp"] = int(level)
    return row


_CANONICAL_TLP = {**stix.TLP1_MARKINGS, **{o["id"]: o for o in stix.TLP2_MARKINGS.values()}}


def _is_canonical_tlp(obj: dict) -> bool:
    """Tell whether a posted TLP marking is the standard object (OpenCTI's AMBER+STRICT has no standard form)."""
    canonical = _CANONICAL_TLP.get(obj["id"])
    return canonical is None or canonical == obj


def _sharing_columns(snap: snapshots.Snapshot, ext: Any, marking_id: str) -> dict:
    if not isinstance(ext, dict) or not isinstance(ext.get("share_with", {}), dict):
        raise Unprocessable(f"{marking_id}: the sharing extension must hold a 'share_with' object")
    share = ext.get("share_with", {})
    lists = {k: share.get(k, []) for k in ("partners", "groups", "countries")}
    lists["exclude"] = ext.get("exclude_partners", [])
    for name, values in lists.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Unprocessable(f"{marking_id}: '{name}' must be a list of strings")
    for slug in lists["partners"] + lists["exclude"]:
        if slug not in snap.by_slug:
            raise Unprocessable(f"{marking_id}: unknown partner '{slug}' in sharing marking")
    for slug in lists["groups"]:
        if slug not in snap.world.groups:
            raise Unprocessable(f"{marking_id}: unknown trust group '{slug}' in sharing marking")
    if not (lists["partners"] or lists["groups"] or lists["countries"]):
        raise Unprocessable(f"{marking_id}: a sharing marking must name at least one partner, group or country")
    return {
        "kind": "sharing",
        "share_partners": ",".join(lists["partners"]),
        "share_groups": ",".join(lists["groups"]),
        "share_countries": ",".join(c.upper() for c in lists["countries"]),
        "exclude_partners": ",".join(lists["exclude"]),
        "no_federation": bool(ext.get("no_federation", False)),
    }


def _acs_kind(marking_id: str, ext: Any) -> str:
    """Accept a valid, unclassified ACS 3.0 marking-definition (kind ``acs``), or say what is wrong."""
    problems = acs.errors(ext)
    if problems:
        raise Unprocessable(f"{marking_id}: invalid ACS 3.0 marking: " + "; ".join(problems[:5]))
    refusal = acs.classification_refusal(ext)
    if refusal is not None:
        raise Unprocessable(f"{marking_id}: {refusal}")
    return "acs"


def _sharing_from_row(row: dict) -> policy.SharingMarking | None:
    if row["kind"] == "acs":
        return snapshots.acs_marking(row["id"], orjson.loads(row["raw"]))
    if row["kind"] != "sharing":
        return None
    return policy.SharingMarking(
        id=row["id"],
        partners=frozenset(split_list(row["share_partners"])),
        groups=frozenset(split_list(row["share_groups"])),
        countries=frozenset(split_list(row["share_countries"])),
        exclude_partners=frozenset(split_list(row["exclude_partners"])),
        no_federation=row["no_federation"],
    )


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


def _store_all(
    session: Session,
    hub: Hub,
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    prepared: list[_Prepared],
    result: IngestResult,
    read_only: bool,
) -> None:
    """Check ownership and duplicates under the writer lock, then insert with fresh ``date_added`` values."""
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
    rows, saved_markings, refused_markings, reserved = [], set(), set(), set()
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
    start = clock.add_dated(session, rows)
    writes.insert_versions(session, rows)
    writes.register_origins(session, rows)
    # An identity id named as creator and never published is reserved for the partner naming it, so that
    # nobody can publish an identity under it later and be credited with this partner's objects.
    writes.register_origins(
        session, [{"stix_id": c, "originator_id": partner.id, "date_added": start} for c in sorted(reserved)]
    )
    _flag_quarantined(session, partner, collection, [row for row in rows if row["quarantined"]], owners)
    # Objects stored before, or added in several versions here, may now have versions with a newer one.
    added = Counter(row["stix_id"] for row in rows)
    writes.refresh_newer(session, collection.pk, [i for i, n in added.items() if n > 1 or i in earlier])


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
    item: _Prepared,
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
        and _identical_stored(session, item)
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
            result.successes.append(item.key)  # an exact duplicate is not an error (TAXII 5.5)
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
    result.successes.append(item.key)
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


def _identical_stored(session: Session, item: _Prepared) -> bool:
    """Tell whether this exact object version is stored in some collection."""
    stmt = (
        select(m.ObjectVersion.raw)
        .where(
            m.ObjectVersion.stix_id == item.obj["id"],
            m.ObjectVersion.version_us == item.version_us,
            m.ObjectVersion.quarantined.is_(False),
        )
        .limit(1)
    )
    raw = session.execute(stmt).scalar()
    return raw is not None and orjson.loads(raw) == item.obj


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


# --------------------------------------------------------------------- reference collection


def reference_objects(session: Session) -> list[dict]:
    """Build what every API root's reference collection holds, from the current configuration."""
    state = session.get(m.HubState, 1)
    assert state is not None
    objs: list[dict] = [
        _identity(
            state.identity_id,
            state.name,
            "organization",
            REFERENCE_CREATED,
            {"contact_information": state.contact} if state.contact else {},
        )
    ]
    for p in session.scalars(select(m.Partner).where(m.Partner.kind != "hub").order_by(m.Partner.slug)):
        extra: dict[str, Any] = {"sectors": [p.sector]} if p.sector else {}
        extra["x_cti_hub_partner"] = p.slug
        objs.append(_identity(p.identity_id, p.name, "organization", stix.format_timestamp(p.created_us), extra))
    objs += [stix.TLP2_EXTENSION_DEFINITION, *stix.TLP2_MARKINGS.values(), *stix.TLP1_MARKINGS.values()]
    objs.append(sharing_extension_definition(state.identity_id))
    for group in session.scalars(select(m.TrustGroup).order_by(m.TrustGroup.slug)):
        objs.append(group_marking(group.marking_id, group.slug, group.name))
    return objs


def _identity(identity_id: str, name: str, klass: str, created: str, extra: dict) -> dict:
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id,
        "created": created,
        "modified": created,
        "name": name,
        "identity_class": klass,
        **extra,
    }


def sharing_extension_definition(hub_identity: str) -> dict:
    """The STIX extension-definition of the hub's sharing-restriction marking."""
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": SHARING_EXTENSION_ID,
        "created_by_ref": hub_identity,
        "created": REFERENCE_CREATED,
        "modified": REFERENCE_CREATED,
        "name": "Sharing restriction",
        "description": "Restricts who may receive an object: share_with lists partners, trust groups and "
        "countries (a union); exclude_partners removes partners; no_federation keeps the object "
        "inside this hub. Several sharing markings on one object all apply.",
        "schema": "https://github.com/cti-hub/cti-hub/blob/main/README.md#sharing-markings",
        "version": "1.0.0",
        "extension_types": ["property-extension"],
    }


def group_marking(marking_id: str, slug: str, name: str) -> dict:
    """The ready-made sharing marking that restricts an object to one trust group."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id,
        "created": REFERENCE_CREATED,
        "name": f"Share with: {name}",
        "extensions": {
            SHARING_EXTENSION_ID: {
                "extension_type": "property-extension",
                "share_with": {"partners": [], "groups": [slug], "countries": []},
                "exclude_partners": [],
                "no_federation": False,
            }
        },
    }


def publish_reference(session: Session) -> int:
    """Bring every reference collection and the markings table up to date; return the versions added."""
    hub_partner = session.execute(select(m.Partner).where(m.Partner.slug == "hub")).scalar_one()
    objs = reference_objects(session)
    _register_reference_markings(session, objs, hub_partner.id)
    snapshots.bump_rules(session)
    clock.lock_clock(session)
    rows = []
    for collection in session.scalars(select(m.Collection).where(m.Collection.is_reference.is_(True))):
        current = {
            v.stix_id: v
            for v in session.scalars(select(m.ObjectVersion).where(m.ObjectVersion.collection_id == collection.id))
        }
        for obj in objs:
            row = _reference_row(obj, current.get(obj["id"]), collection.id, hub_partner.id)
            if row is not None:
                rows.append(row)
    clock.add_dated(session, rows)
    writes.insert_versions(session, rows)
    writes.register_origins(session, rows)
    for collection_pk in {row["collection_id"] for row in rows}:
        writes.refresh_newer(
            session, collection_pk, [r["stix_id"] for r in rows if r["collection_id"] == collection_pk]
        )
    return len(rows)


def _reference_row(obj: dict, latest: m.ObjectVersion | None, collection_pk: int, hub_pk: int) -> dict | None:
    if latest is not None and orjson.loads(latest.raw) == obj:
        return None
    if latest is not None and "modified" in obj:
        # A changed identity or group name becomes a new version, strictly later than the stored one.
        stamp = max(clock.now_us(), latest.version_us + 1000)
        obj = {**obj, "modified": stix.format_timestamp(stamp // 1000 * 1000)}
    elif latest is not None:
        return None  # markings are immutable: keep the first
    version = stix.object_version(obj)
    return {
        "collection_id": collection_pk,
        "stix_id": obj["id"],
        "type": obj["type"],
        "version": version,
        "version_us": stix.parse_timestamp(version),
        "spec_version": "2.1",
        "originator_id": hub_pk,
        "tlp": int(TLP.CLEAR),
        "restriction_set_id": None,
        "unknown_markings": False,
        "raw": orjson.dumps(obj).decode(),
    }


def _register_reference_markings(session: Session, objs: list[dict], hub_pk: int) -> None:
    known = set(session.scalars(select(m.Marking.id)))
    for obj in objs:
        if obj["type"] != "marking-definition" or obj["id"] in known:
            continue
        level = stix.marking_tlp(obj["id"])
        ext = (obj.get("extensions") or {}).get(SHARING_EXTENSION_ID, {})
        share = ext.get("share_with", {})
        session.add(
            m.Marking(
                id=obj["id"],
                kind="tlp" if level is not None else "sharing",
                tlp=None if level is None else int(level),
                share_partners=",".join(share.get("partners", [])),
                share_groups=",".join(share.get("groups", [])),
                share_countries=",".join(share.get("countries", [])),
                exclude_partners="",
                no_federation=False,
                raw=orjson.dumps(obj).decode(),
                originator_id=hub_pk,
            )
        )
    session.flush()


def reannounce(session: Session, before: snapshots.Snapshot) -> int:
    """Re-date versions that a rule change made visible to some partner, so ``added_after`` pollers get them.

    A partner that polls with ``added_after`` never looks back: an old version it may now receive would
    stay invisible to it forever under its original ``date_added``. Such versions get a new ``date_added``
    after every value handed out so far; partners that already had them may receive them once more
    (same id and version, so SIEMs de-duplicate), and nobody misses them. Objects the change took
    out of a partner's view become withdrawals that partner's feeds list (``withdrawals.after_rule_change``).
    """
    after = snapshots.load_snapshot(session)
    found: set[int] = set()
    for collection in after.collections.values():
        old_collection = before.collections.get(collection.uuid)
        if old_collection is None:
            continue  # a new collection: nobody has polled it yet
        for partner_pk, partner in after.partners.items():
            now = after.read_filter(partner_pk, collection)
            if partner.kind == "hub" or not now.readable or partner_pk not in before.partners:
                continue  # a new partner starts from the beginning anyway
            old = before.read_filter(partner_pk, old_collection)
            if old != now:
                found |= reads.newly_visible(session, collection.pk, partner_pk, now, old)
    count = writes.restamp(session, found)
    withdrawals.after_rule_change(session, before, after)
    return count


# --------------------------------------------------------------------- keys


def create_key(
    session: Session,
    pepper: str,
    partner_slug: str,
    *,
    read_only: bool = False,
    expires_days: int | None = None,
    cidrs: str = "",
    label: str = "",
    actor: str = "cli",
    cert_sha256: str = "",
    cert_subject: str = "",
) -> tuple[str, str]:
    """Issue an API key for a partner; return (key id, secret). The secret is not stored.

    ``cert_sha256`` / ``cert_subject`` bind the key to a client certificate (see ``hub.auth``).
    """
    partner = session.execute(select(m.Partner).where(m.Partner.slug == partner_slug)).scalar_one_or_none()
    if partner is None or partner.slug == "hub":  # the hub itself never authenticates; peer hubs do
        raise NotFound(f"unknown partner '{partner_slug}'")
    if expires_days is not None and expires_days <= 0:
        raise BadRequest("--expires-days must be a positive number of days")
    try:
        networks = auth.parse_cidrs(cidrs)
        fingerprint = auth.normalise_fingerprint(cert_sha256) if cert_sha256 else ""
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if len(cert_subject) > 500:
        raise BadRequest("--cert-subject is longer than 500 characters")
    secret, key_id, now = auth.new_secret(), auth.new_key_id(), clock.now_us()
    session.add(
        m.ApiKey(
            key_id=key_id,
            partner_id=partner.id,
            secret_hash=auth.hash_secret(pepper, secret),
            label=label,
            read_only=read_only,
            cidrs=",".join(str(n) for n in networks),
            created_us=now,
            expires_us=now + expires_days * 86_400_000_000 if expires_days else None,
            cert_sha256=fingerprint,
            cert_subject=cert_subject.strip(),
        )
    )
    auditlog.audit(
        session,
        actor,
        "key.create",
        partner_slug,
        {
            "key_id": key_id,
            "read_only": read_only,
            "expires_days": expires_days,
            "cidrs": cidrs,
            "cert_sha256": fingerprint,
            "cert_subject": cert_subject.strip(),
        },
    )
    return key_id, secret


def rotate_keys(
    session: Session, pepper: str, partner_slug: str, *, overlap_us: int, key_id: str = "", actor: str = "cli"
) -> tuple[str, str, list[str]]:
    """Issue a new key like the partner's current one and expire the old ones after ``overlap_us``.

    The new key keeps the old one's label, mode, networks and certificate binding, so a SIEM
    switches by changing the secret alone; the old keys keep working until the overlap ends (or
    their own earlier expiry). Return (new key id, its secret, the key ids that will expire).
    """
    now = clock.now_us()
    stmt = (
        select(m.ApiKey)
        .join(m.Partner)
        .where(m.Partner.slug == partner_slug, m.ApiKey.revoked_us.is_(None))
        .where((m.ApiKey.expires_us.is_(None)) | (m.ApiKey.expires_us > now))
        .order_by(m.ApiKey.created_us.desc())
    )
    current = [k for k in session.scalars(stmt) if not key_id or k.key_id == key_id]
    if not current:
        raise NotFound(
            f"no active key {key_id!r} of partner '{partner_slug}'"
            if key_id
            else f"partner '{partner_slug}' has no active key to rotate"
        )
    if overlap_us < 0:
        raise BadRequest("--overlap must not be negative")
    model = current[0]
    lifetime_days = (model.expires_us - model.created_us) // 86_400_000_000 if model.expires_us else None
    new_id, secret = create_key(
        session,
        pepper,
        partner_slug,
        read_only=model.read_only,
        expires_days=max(1, lifetime_days) if lifetime_days is not None else None,
        cidrs=model.cidrs,
        label=model.label,
        actor=actor,
        cert_sha256=model.cert_sha256,
        cert_subject=model.cert_subject,
    )
    ends = now + overlap_us
    for key in current:
        key.expires_us = min(key.expires_us, ends) if key.expires_us else ends
    auditlog.audit(
        session,
        actor,
        "key.rotate",
        partner_slug,
        {"new": new_id, "expiring": [k.key_id for k in current], "overlap_us": overlap_us},
    )
    return new_id, secret, [k.key_id for k in current]


def revoke_key(session: Session, key_id: str, *, actor: str = "cli") -> None:
    key = session.execute(select(m.ApiKey).where(m.ApiKey.key_id == key_id)).scalar_one_or_none()
    if key is None:
        raise NotFound(f"unknown key '{key_id}'")
    if key.revoked_us is None:
        key.revoked_us = clock.now_us()
        auditlog.audit(session, actor, "key.revoke", key_id)


# --------------------------------------------------------------------- admin accounts


def reset_admin_password(session: Session, username: str, password: str, actor: str = "cli") -> None:
    """Give an existing panel account a new password (argon2), recorded in the audit trail."""
    from argon2 import PasswordHasher

    if len(password) < 12:
        raise BadRequest("the password must be at least 12 characters")
    account = session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none()
    if account is None:
        raise NotFound(f"no administrator account named '{username}'")
    account.password_hash = PasswordHasher().hash(password)
    auditlog.audit(session, actor, "admin.password_reset", username)


def create_admin(session: Session, username: str, password: str, role: str = "admin") -> None:
    """Create a panel account; passwords are typed by people, so they get argon2."""
    from argon2 import PasswordHasher

    if not username or len(username) > 64:
        raise BadRequest("the username must be 1-64 characters")
    if len(password) < 12:
        raise BadRequest("the password must be at least 12 characters")
    if session.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one_or_none():
        raise BadRequest(f"an account named '{username}' already exists")
    session.add(
        m.AdminUser(
            username=username, password_hash=PasswordHasher().hash(password), role=role, created_us=clock.now_us()
        )
    )
    auditlog.audit(session, "cli", "admin.create", username, {"role": role})
