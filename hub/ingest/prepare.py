"""Each object of an envelope validated and its markings worked out, before the writer lock is taken.

Markings are prepared first, then identities, so that objects can rely on those sent in the same envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.orm import Session

from hub import acs, policy, stix
from hub.errors import Unprocessable
from hub.ids import FEEDBACK_SHARE_ID, SHARING_EXTENSION_ID
from hub.models import split_list
from hub.policy import TLP
from hub.store import reads, snapshots


@dataclass
class IngestResult:
    """What happened to each object of an envelope, for the TAXII status resource."""

    successes: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    status_id: str = ""
    # Successes that were already stored byte-for-byte before this envelope (a subset of successes).
    unchanged: list[dict] = field(default_factory=list)
    # Whether successes carry warninglist notes (a bulk import, which reports no status, does without).
    notes: bool = True

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
    terms: list[tuple[str, str]] | None = None  # stix.search_terms of the object, when it is valid


@dataclass
class Prepared:
    obj: dict
    key: dict
    facts: policy.ObjectFacts
    sharing_ids: tuple[str, ...]
    version_us: int
    raw: str
    marking_row: dict | None = None
    terms: list[tuple[str, str]] | None = None  # the search terms, when worked out ahead (``Checked``)


def _status_key(obj: Any, index: int) -> dict:
    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
        version = obj.get("modified") or obj.get("created")
        return {"id": obj["id"], "version": version if isinstance(version, str) else stix.object_version({})}
    return {"id": f"objects[{index}]", "version": stix.object_version({})}


def hidden_markings(
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
        if r in snap.markings
        and stix.marking_tlp(r) is None
        and r != FEEDBACK_SHARE_ID  # the hub's own, documented for every partner (hub.feedback)
        and snap.markings[r].originator != partner.id
    }
    if not candidates:
        return frozenset()
    return frozenset(candidates - reads.readable_ids(session, snap, partner.id, candidates))


def prepare_all(
    snap: snapshots.Snapshot,
    partner: policy.Partner,
    collection: snapshots.CollectionInfo,
    objects: list[Any],
    result: IngestResult,
    hidden: frozenset[str] = frozenset(),
    checked: Sequence[Checked | None] | None = None,
) -> list[Prepared]:
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
) -> Prepared:
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
    return Prepared(
        obj,
        {"id": obj["id"], "version": version},
        facts,
        tuple(sorted(set(sharing_ids))),
        version_us,
        raw,
        marking_row,
        checked.terms if checked is not None else None,
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
