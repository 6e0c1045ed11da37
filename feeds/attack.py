"""MITRE ATT&CK: the DPRK intrusion sets, their software, techniques and relationships.

Reads an ATT&CK STIX bundle (2.1, or the 2.0 files of mitre/cti, upgraded the way MITRE does) from
a file or URL into the reference collection, as the hub. The intrusion sets carry ATT&CK's alias
table (``aliases``), which ``cti-hub actors`` lists and the IOC importer uses to link an indicator
naming an alias (``--actor "HIDDEN COBRA"``) to the canonical intrusion set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from feeds import register
from feeds.stix_bundle import StixBundle
from hub.runtime import Hub
from hub.store import reads

ATTACK_TYPES = frozenset(
    {
        "intrusion-set",
        "campaign",
        "malware",
        "tool",
        "attack-pattern",
        "relationship",
        "identity",
        "marking-definition",
        "course-of-action",
        "x-mitre-tactic",
    }
)


@register("attack")
class Attack(StixBundle):
    """An ATT&CK bundle (the DPRK subset or the full enterprise file)."""

    name = "attack"
    default_partner = "hub"
    default_collection = "reference"

    def items(self, data: bytes) -> Iterable:
        for item in super().items(data):
            obj = getattr(item, "obj", None)
            if obj is not None and obj.get("type") not in ATTACK_TYPES:
                self.note(f"{obj.get('type')} objects left out (not part of the actor reference data)")
                continue
            yield item


@dataclass(frozen=True)
class Actor:
    """An intrusion set with its aliases, as listed by ``cti-hub actors``."""

    name: str
    aliases: tuple[str, ...]
    stix_id: str
    external_id: str
    collection: str
    revoked: bool


def actors(hub: Hub, partner: str, root: str) -> list[Actor]:
    """The intrusion sets ``partner`` can read in ``root``, canonical name first, aliases after."""
    out: dict[str, Actor] = {}
    with hub.session(write=False) as session:
        snap = hub.snapshot(session)
        partner_pk = snap.by_slug[partner]
        for collection in snap.collections_of(root):
            query = reads.VersionQuery(
                collection_pk=collection.pk,
                read=snap.read_filter(partner_pk, collection),
                originator_pk=partner_pk,
                types=("intrusion-set",),
                limit=100_000,
            )
            rows, _ = reads.page(session, query, ("raw",))
            for row in rows:
                obj = orjson.loads(row.raw)
                if obj["id"] in out:
                    continue
                ext = next(
                    (
                        r.get("external_id", "")
                        for r in obj.get("external_references") or []
                        if r.get("source_name") == "mitre-attack"
                    ),
                    "",
                )
                aliases = tuple(a for a in obj.get("aliases") or [] if a != obj.get("name"))
                out[obj["id"]] = Actor(
                    obj.get("name", ""), aliases, obj["id"], ext, collection.alias, bool(obj.get("revoked"))
                )
    return sorted(out.values(), key=lambda a: (a.revoked, a.name.lower()))
