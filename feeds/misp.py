"""MISP events, converted to STIX 2.1 with misp-stix (the converter MISP itself uses).

Sources: a MISP event file or URL (``{"Event": {...}}``), a list of events, a MISP REST search
result (``{"response": [...]}``), or a MISP feed: a directory or URL holding ``manifest.json`` and
one ``<uuid>.json`` per event (give the directory, its URL ending in ``/``, or the manifest itself).

Each event goes through ``MISPtoSTIX21Parser`` and then, per object, these mappings:

- **TLP**: misp-stix marks objects with the ``tlp:*`` tags of their attribute (and the report with
  the event's). An object left without a TLP takes, in this order: its attribute's ``tlp:*`` tag
  (any case), the event's, the ``--tlp`` option, the MISP distribution (0 your organisation only:
  AMBER+STRICT; 1 this community, 4 sharing group: AMBER; 2 connected, 3 all communities: GREEN;
  the most restrictive of event and attribute), else the collection's default. TLP marking
  definitions are not stored again: the hub knows them by id.
- **Actors**: a threat-actor or intrusion-set galaxy (or ``misp-galaxy:threat-actor`` /
  ``mitre-intrusion-set`` tag) whose name or a synonym is a known intrusion set's name or alias is
  replaced by that canonical intrusion set (ATT&CK's, from ``cti-hub feeds import attack``); every
  indicator of the event ``indicates`` the actor (canonical, or the galaxy's own object).
- **Crypto wallets**: ``btc``/``xmr``/``dash`` attributes, which misp-stix leaves as custom
  ``x-misp-attribute`` objects, become indicators with a ``cryptocurrency-wallet`` pattern, as
  the IOC-list connector makes them.
- Attributes without a uuid get one derived from the event and the value, so re-imports match.

The original event is kept in the audit trail (with the event's report), like the originals of
converted STIX objects. Ids come from MISP's uuids, so importing an event again stores nothing new.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from feeds import register
from feeds.base import Connector, FeedError, Item, Refusal, read_source, source_name
from feeds.iocs import find_intrusion_set, pattern_for
from hub import stix
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP

NAMESPACE = uuid.uuid5(HUB_NAMESPACE, "feeds.misp")
TAG_TLP = {
    "tlp:clear": TLP.CLEAR,
    "tlp:white": TLP.CLEAR,
    "tlp:green": TLP.GREEN,
    "tlp:amber": TLP.AMBER,
    "tlp:amber+strict": TLP.AMBER_STRICT,
    "tlp:red": TLP.RED,
}
DISTRIBUTION_TLP = {0: TLP.AMBER_STRICT, 1: TLP.AMBER, 2: TLP.GREEN, 3: TLP.GREEN, 4: TLP.AMBER}
WALLET_TYPES = frozenset({"btc", "xmr", "dash"})
ACTOR_TYPES = frozenset({"threat-actor", "intrusion-set"})
_ACTOR_TAG = re.compile(
    r"^misp-galaxy:(?:threat-actor|mitre-intrusion-set|mitre-enterprise-attack-intrusion-set)="
    r'"(?P<name>[^"]+)"$',
    re.IGNORECASE,
)
_ATTACK_SUFFIX = re.compile(r"\s+-\s+G\d{4}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
MISSING_EXTRA = "the misp connector needs misp-stix, which is not installed: pip install 'cti-hub[misp]'"
NOT_MISP = (
    'not MISP data: expected an event ({"Event": {...}}), a list of events or a MISP feed manifest (manifest.json)'
)


def parse_document(data: bytes) -> tuple[str, Any]:
    """Return ("events", [(key, event)]) or ("manifest", {uuid: info}); raise FeedError if neither."""
    try:
        doc = orjson.loads(data.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as exc:
        raise FeedError(f"not JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("response"), list):
        doc = doc["response"]
    if isinstance(doc, dict) and "Event" in doc:
        return "events", [("event", doc)]
    if isinstance(doc, list):
        if doc and not any(isinstance(e, dict) and "Event" in e for e in doc):
            raise FeedError(NOT_MISP)
        return "events", [(f"events[{i}]", e) for i, e in enumerate(doc)]
    if isinstance(doc, dict) and doc and all(_UUID.match(k) and isinstance(v, dict) for k, v in doc.items()):
        return "manifest", doc
    raise FeedError(NOT_MISP)


def _tag_tlp(tags: Any) -> TLP | None:
    names = [str(t.get("name", "")).strip().lower() for t in tags or [] if isinstance(t, dict)]
    levels = [TAG_TLP[n] for n in names if n in TAG_TLP]
    return max(levels) if levels else None


def _distribution(value: Any) -> int | None:
    try:
        level = int(value)
    except (TypeError, ValueError):
        return None
    return level if level in DISTRIBUTION_TLP else None


def _actor_names(obj: dict) -> list[str]:
    names = [obj.get("name"), *(obj.get("aliases") or [])]
    return [_ATTACK_SUFFIX.sub("", n) for n in names if isinstance(n, str) and n.strip()]


@register("misp")
class MispEvents(Connector):
    """MISP events (one, a list, or a MISP feed directory or URL), converted with misp-stix."""

    name = "misp"

    @classmethod
    def ensure_installed(cls) -> None:
        _parser_class()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.location = ""
        self._actors: dict[str, dict | None] = {}

    def load(self, source: str) -> list[Item]:
        """Read an event file, a list of events or a whole feed; refusals go to the tally."""
        self.ensure_installed()  # before reading anything
        self.source_label = self.source_label or source_name(source)
        self.location = _manifest_location(source)
        ready = super().load(self.location)
        seen: set[tuple[str, str]] = set()
        unique = []
        for item in ready:  # the same object from two events (an organisation's identity) goes once
            key = (item.obj["id"], stix.object_version(item.obj) or "")
            if key not in seen:
                seen.add(key)
                unique.append(item)
        return unique

    def items(self, data: bytes) -> Iterable[Item | Refusal]:
        kind, found = parse_document(data)
        events = self._feed_events(found) if kind == "manifest" else iter(found)
        for key, doc in events:
            if isinstance(doc, str):  # a feed's event file that could not be read
                yield Refusal(key, doc)
                continue
            event = doc.get("Event") if isinstance(doc, dict) else None
            if not isinstance(event, dict) or not _UUID.match(str(event.get("uuid", ""))):
                yield Refusal(key, 'not a MISP event: expected {"Event": {...}} with a uuid')
                continue
            yield from self._event(f"event {event['uuid']}", event)

    def _feed_events(self, manifest: dict) -> Iterator[tuple[str, Any]]:
        for event_uuid in manifest:
            where = _sibling(self.location, f"{event_uuid.lower()}.json")
            try:
                yield f"event {event_uuid}", orjson.loads(read_source(where).removeprefix(b"\xef\xbb\xbf"))
            except FeedError as exc:
                yield f"event {event_uuid}", exc.message
            except orjson.JSONDecodeError as exc:
                yield f"event {event_uuid}", f"not JSON: {exc}"

    # -- one event

    def _event(self, key: str, original: dict) -> Iterable[Item | Refusal]:
        event = self._with_uuids(original)
        parser = _parser()
        try:
            parser.parse_misp_event({"Event": copy.deepcopy(event)})  # some versions consume their input
            objects = [orjson.loads(o.serialize()) for o in parser.stix_objects]
        except Exception as exc:  # noqa: BLE001 - misp-stix raises many kinds; the event is refused with the reason
            yield Refusal(key, f"misp-stix cannot convert the event: {type(exc).__name__}: {exc}"[:500])
            return
        objects = [o for o in objects if not (o["type"] == "marking-definition" and stix.marking_tlp(o["id"]))]
        objects = [self._wallet(o) for o in objects]
        objects = self._link_actors(event, objects)
        levels = self._levels(event)
        report_id = next((o["id"] for o in objects if o["id"].endswith("--" + event["uuid"].lower())), None)
        for obj in objects:
            obj = self._mark(obj, levels)
            if obj["id"] == report_id:
                yield Item(obj, original={"Event": original}, changes=("converted from a MISP event by misp-stix",))
            else:
                yield Item(obj)

    def _with_uuids(self, event: dict) -> dict:
        """Give attributes without a uuid a stable one (misp-stix would draw a random one)."""
        missing = [a for a in _attributes(event) if not _UUID.match(str(a.get("uuid", "")))]
        if not missing:
            return event
        event = copy.deepcopy(event)
        for attribute in _attributes(event):
            if not _UUID.match(str(attribute.get("uuid", ""))):
                seed = f"{event['uuid']}|{attribute.get('type')}|{attribute.get('value')}"
                attribute["uuid"] = str(uuid.uuid5(NAMESPACE, seed))
                self.note("attribute without a uuid given one derived from its event and value")
        return event

    def _wallet(self, obj: dict) -> dict:
        if obj["type"] != "x-misp-attribute" or obj.get("x_misp_type") not in WALLET_TYPES:
            return obj
        value = str(obj.get("x_misp_value", ""))
        self.note(f"MISP {obj['x_misp_type']} attribute mapped to a cryptocurrency-wallet indicator")
        keep = {
            k: v
            for k, v in obj.items()
            if k in ("created_by_ref", "created", "modified", "labels", "object_marking_refs", "description")
        }
        return {
            "type": "indicator",
            "spec_version": "2.1",
            "id": "indicator--" + obj["id"].split("--", 1)[1],
            **keep,
            "name": f"crypto wallet {value}",
            "indicator_types": ["malicious-activity"],
            "pattern": pattern_for("wallet", value),
            "pattern_type": "stix",
            "valid_from": obj["created"],
        }

    def _canonical(self, names: Iterable[str]) -> dict | None:
        for name in names:
            wanted = name.strip().lower()
            if wanted not in self._actors:
                self._actors[wanted] = find_intrusion_set(
                    self.hub, self.target.partner_pk, self.target.collection.api_root, name
                )
            if self._actors[wanted] is not None:
                return self._actors[wanted]
        return None

    def _link_actors(self, event: dict, objects: list[dict]) -> list[dict]:
        """Replace actor galaxies by the canonical intrusion set; make every indicator indicate the actors."""
        replaced: dict[str, str] = {}
        targets: dict[str, None] = {}
        for obj in objects:
            if obj["type"] in ACTOR_TYPES:
                canonical = self._canonical(_actor_names(obj))
                if canonical is not None and canonical["id"] != obj["id"]:
                    replaced[obj["id"]] = canonical["id"]
                    self.note(f"MISP galaxy {obj.get('name')!r} linked to the intrusion set {canonical['name']!r}")
                targets[replaced.get(obj["id"], obj["id"])] = None
        for tag in event.get("Tag") or []:
            match = _ACTOR_TAG.match(str(tag.get("name", ""))) if isinstance(tag, dict) else None
            canonical = self._canonical(_actor_names({"name": match["name"]})) if match else None
            if canonical is not None:
                targets[canonical["id"]] = None
        out = [_replace_refs(o, replaced) for o in objects if o["id"] not in replaced]
        linked = {(o.get("source_ref"), o.get("target_ref")) for o in out if o["type"] == "relationship"}
        for indicator in [o for o in out if o["type"] == "indicator"]:
            for target in targets:
                if (indicator["id"], target) not in linked:
                    out.append(self._relationship(indicator, target))
        return out

    def _relationship(self, indicator: dict, target: str) -> dict:
        ident = uuid.uuid5(NAMESPACE, f"{indicator['id']}|indicates|{target}")
        return {
            "type": "relationship",
            "spec_version": "2.1",
            "id": f"relationship--{ident}",
            "created_by_ref": self.target.identity_id,
            "created": indicator["created"],
            "modified": indicator["created"],
            "relationship_type": "indicates",
            "source_ref": indicator["id"],
            "target_ref": target,
        }

    # -- TLP

    def _levels(self, event: dict) -> tuple[dict[str, TLP], TLP | None]:
        """The TLP of each attribute / MISP object uuid, and the event's (for everything else)."""
        event_tag = _tag_tlp(event.get("Tag"))
        event_dist = _distribution(event.get("distribution"))

        def level(tags: Any, distribution: Any) -> TLP | None:
            tagged = _tag_tlp(tags)
            if tagged is not None or event_tag is not None or self.tlp is not None:
                return tagged if tagged is not None else event_tag if event_tag is not None else self.tlp
            dists = [DISTRIBUTION_TLP[d] for d in (event_dist, _distribution(distribution)) if d is not None]
            return max(dists) if dists else None

        per_uuid: dict[str, TLP] = {}
        sources = [
            *((a, a.get("Tag")) for a in _attributes(event)),
            *((o, None) for o in event.get("Object") or [] if isinstance(o, dict)),
        ]
        for source, tags in sources:
            found = level(tags, source.get("distribution"))
            if found is not None and isinstance(source.get("uuid"), str):
                per_uuid[source["uuid"].lower()] = found
        return per_uuid, level(None, None)

    def _mark(self, obj: dict, levels: tuple[dict[str, TLP], TLP | None]) -> dict:
        per_uuid, event_level = levels
        level = per_uuid.get(obj["id"].split("--", 1)[-1].lower(), event_level)
        if level is None or obj["type"] == "marking-definition" or _has_tlp(obj):
            return obj
        return {
            **obj,
            "object_marking_refs": [*(obj.get("object_marking_refs") or []), stix.TLP2_MARKINGS[level]["id"]],
        }


def _has_tlp(obj: dict) -> bool:
    return any(stix.marking_tlp(r) is not None for r in obj.get("object_marking_refs") or [])


def _attributes(event: dict) -> list[dict]:
    found = [a for a in event.get("Attribute") or [] if isinstance(a, dict)]
    for misp_object in event.get("Object") or []:
        if isinstance(misp_object, dict):
            found += [a for a in misp_object.get("Attribute") or [] if isinstance(a, dict)]
    return found


def _replace_refs(obj: dict, replaced: dict[str, str]) -> dict:
    if not replaced:
        return obj
    out = dict(obj)
    for key in ("source_ref", "target_ref"):
        if out.get(key) in replaced:
            out[key] = replaced[out[key]]
    if isinstance(out.get("object_refs"), list):
        out["object_refs"] = list(dict.fromkeys(replaced.get(r, r) for r in out["object_refs"]))
    return out


def _parser_class() -> Any:
    """misp-stix's MISP -> STIX 2.1 parser (imported on first use: it loads the STIX 1 libraries too)."""
    try:
        from misp_stix_converter import MISPtoSTIX21Parser
    except ImportError:
        raise FeedError(MISSING_EXTRA) from None
    return MISPtoSTIX21Parser


def _parser() -> Any:
    """A fresh parser for each event: it keeps the objects of the event it parsed."""
    return _parser_class()()


def _manifest_location(source: str) -> str:
    """A feed directory or a URL ending in ``/`` means its ``manifest.json``; anything else is read as given."""
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https", "file"):
        return source + "manifest.json" if source.endswith("/") else source
    return str(Path(source) / "manifest.json") if Path(source).is_dir() else source


def _sibling(location: str, name: str) -> str:
    """The event file ``name`` next to the manifest at ``location``."""
    if urllib.parse.urlsplit(location).scheme.lower() in ("http", "https", "file"):
        return urllib.parse.urljoin(location, name)
    return str(Path(location).parent / name)
