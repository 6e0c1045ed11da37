"""STIX bundles (2.1, or 2.0 upgraded to 2.1) from a file or URL.

The 2.0 -> 2.1 upgrade follows the STIX 2.1 specification's changes from 2.0 (and MITRE's own
mapping of ATT&CK): ``spec_version`` added; ``labels`` that name the object's kind move to the
2.1 ``*_types`` property (indicator, malware, tool, threat-actor, report), other labels stay;
indicators get ``pattern_type: stix``; malware gets ``is_family: true``; the TLP 1.0 marking
definitions become the standard 2.1 objects. ``created_by_ref`` and ``object_marking_refs`` are
kept. The original of every changed object goes to the audit trail.

Lenient mode (the default) maps well-known deviations of real vendor bundles and reports each:
a marking definition that reuses the TLP:WHITE id under the name "TLP:CLEAR" (Elastic, OpenCTI)
is dropped, and the references to the standard WHITE (= CLEAR) id are kept. ``strict`` refuses it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from feeds import register
from feeds.base import Connector, FeedError, Item, Refusal
from hub import stix

# 2.0 labels that became a *_types property in 2.1, per object type.
TYPES_PROPERTY = {
    "indicator": "indicator_types",
    "malware": "malware_types",
    "tool": "tool_types",
    "threat-actor": "threat_actor_types",
    "report": "report_types",
}
# The STIX 2.1 open vocabularies of those properties: only these labels move.
VOCABULARIES = {
    "indicator": {
        "anomalous-activity",
        "anonymization",
        "benign",
        "compromised",
        "malicious-activity",
        "attribution",
        "unknown",
    },
    "malware": {
        "adware",
        "backdoor",
        "bot",
        "bootkit",
        "ddos",
        "downloader",
        "dropper",
        "exploit-kit",
        "keylogger",
        "ransomware",
        "remote-access-trojan",
        "resource-exploitation",
        "rogue-security-software",
        "rootkit",
        "screen-capture",
        "spyware",
        "trojan",
        "unknown",
        "virus",
        "webshell",
        "wiper",
        "worm",
    },
    "tool": {
        "denial-of-service",
        "exploitation",
        "information-gathering",
        "network-capture",
        "credential-exploitation",
        "remote-access",
        "vulnerability-scanning",
        "unknown",
    },
    "threat-actor": {
        "activist",
        "competitor",
        "crime-syndicate",
        "criminal",
        "hacker",
        "insider-accidental",
        "insider-disgruntled",
        "nation-state",
        "sensationalist",
        "spy",
        "terrorist",
        "unknown",
    },
    "report": {
        "attack-pattern",
        "campaign",
        "identity",
        "indicator",
        "intrusion-set",
        "malware",
        "observed-data",
        "threat-actor",
        "threat-report",
        "tool",
        "vulnerability",
    },
}
# ATT&CK's 2.0 objects carry their type as the only label ("malware", "tool"): MITRE drops it in 2.1.
REDUNDANT_LABELS = {"malware": {"malware"}, "tool": {"tool"}}
WHITE_ID = "marking-definition--613f2e26-407d-48c7-9eca-b8e91df99dc9"


def parse_bundle(data: bytes) -> tuple[list[Any], str]:
    """Return a bundle's objects and its declared spec version ("" when none); raise FeedError if not a bundle."""
    try:
        doc = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"not JSON: {exc}") from None
    if isinstance(doc, list):
        raise FeedError('the top level is a JSON array, not a STIX bundle ({"type": "bundle", "objects": [...]})')
    if not isinstance(doc, dict) or doc.get("type") != "bundle":
        raise FeedError('not a STIX bundle: the top-level object must have "type": "bundle"')
    objects = doc.get("objects", [])
    if not isinstance(objects, list):
        raise FeedError("the bundle's 'objects' is not a list")
    spec = doc.get("spec_version")
    return objects, spec if isinstance(spec, str) else ""


def upgrade(obj: dict) -> tuple[dict, list[str]]:
    """Upgrade one STIX 2.0 object to 2.1; return the new object and what changed."""
    kind = obj.get("type")
    if kind == "marking-definition" and stix.marking_tlp(str(obj.get("id"))) is not None:
        canonical = stix.TLP1_MARKINGS.get(obj["id"])
        if canonical is not None and obj.get("definition") == canonical["definition"]:
            return dict(canonical), ["TLP 1.0 marking definition replaced by the standard 2.1 object"]
    out = {"type": kind, "spec_version": "2.1", **{k: v for k, v in obj.items() if k != "type"}}
    changes = ["spec_version 2.1 added"]
    labels = out.get("labels")
    if kind in TYPES_PROPERTY and isinstance(labels, list):
        vocab = VOCABULARIES[kind]
        moved = [x for x in labels if isinstance(x, str) and x in vocab]
        kept = [x for x in labels if x not in vocab and x not in REDUNDANT_LABELS.get(kind, ())]
        if moved:
            out[TYPES_PROPERTY[kind]] = moved
            changes.append(f"labels {moved} -> {TYPES_PROPERTY[kind]}")
        if kept:
            out["labels"] = kept
        else:
            out.pop("labels")
        if len(kept) + len(moved) != len(labels):
            changes.append(f"redundant label {kind!r} removed")
    if kind == "indicator" and "pattern_type" not in out:
        out["pattern_type"] = "stix"
        changes.append("pattern_type stix added")
    if kind == "malware" and "is_family" not in out:
        out["is_family"] = True
        changes.append("is_family true added")
    return out, changes


@register("stix")
class StixBundle(Connector):
    """A STIX 2.1 or 2.0 bundle from a file or URL."""

    name = "stix"
    json_items = True  # parsed from JSON; upgrades add only strings, lists and booleans

    def items(self, data: bytes) -> Iterable[Item | Refusal]:
        objects, bundle_spec = parse_bundle(data)
        for index, obj in enumerate(self.reading(objects, len(objects), "objects")):
            if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                yield Refusal(f"objects[{index}]", "not a STIX object (expected a JSON object with a 'type')")
                continue
            yield from self._one(obj, bundle_spec)

    def _one(self, obj: dict, bundle_spec: str) -> Iterable[Item | Refusal]:
        key = str(obj["id"]) if isinstance(obj.get("id"), str) else str(obj["type"])
        if obj.get("id") == WHITE_ID and obj.get("type") == "marking-definition" and obj.get("name") == "TLP:CLEAR":
            if obj == stix.TLP1_MARKINGS[WHITE_ID]:
                yield Item(obj)
            elif self.strict:
                yield Refusal(
                    key,
                    "marking definition reuses the TLP:WHITE id under the name TLP:CLEAR "
                    "(not the standard object; lenient mode maps it)",
                )
            else:
                self.note("TLP:CLEAR definition on the TLP:WHITE id dropped (references kept: WHITE = CLEAR)")
            return
        is_20 = "spec_version" not in obj and (bundle_spec == "2.0" or obj["type"] not in stix.SCO_TYPES)
        if obj.get("spec_version") == "2.0":
            is_20 = True
            obj = {k: v for k, v in obj.items() if k != "spec_version"}
        if not is_20:
            yield Item(obj)
            return
        upgraded, changes = upgrade(obj)
        yield Item(upgraded, original=obj, changes=tuple(["upgraded from STIX 2.0", *changes]))
