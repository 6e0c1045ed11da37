"""CSV and plain-text IOC lists: each value becomes a STIX 2.1 indicator with one observable.

Recognised values: IPv4/IPv6 addresses, domain names, URLs, e-mail addresses, MD5/SHA-1/SHA-256
hashes and crypto-wallet addresses (a custom ``cryptocurrency-wallet`` observable, as OpenCTI uses).
Defanged values (``hxxp``, ``[.]``, ``(.)``, ``[@]``) are refanged. A UTF-8 BOM, CRLF line ends,
``#`` / ``//`` comments and section headings are tolerated; a text line that is not an indicator is
a heading and names the indicators under it.

Indicator ids are UUIDv5 of the source name and the value, and a value already imported keeps its
stored object, so importing the same list again stores nothing new. With ``actor`` every indicator
``indicates`` that intrusion set: found by name or alias among the intrusion sets the partner can
see, or created.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import uuid
from collections.abc import Iterable

import orjson

from feeds import register
from feeds.base import Connector, FeedError, Item, Refusal
from hub import stix
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import clock, reads, writes

NAMESPACE = uuid.uuid5(HUB_NAMESPACE, "feeds.iocs")
VALUE_COLUMNS = ("value", "indicator", "ioc", "observable", "ioc_value", "data")
TYPE_COLUMNS = ("type", "entity_type", "indicator_type", "ioc_type", "kind", "category")
NOTE_COLUMNS = ("notes", "note", "description", "comment", "comments", "context")

_HEX = re.compile(r"^[0-9a-fA-F]+$")
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9_](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+$")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)
_BTC = re.compile(r"^(?:bc1[02-9ac-hj-np-z]{11,71}|[13][1-9A-HJ-NP-Za-km-z]{25,34})$")
_ETH = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HASHES = {32: "MD5", 40: "SHA-1", 64: "SHA-256"}
# File names look like domains; these suffixes are not top-level domains (zip and mov are, so they stay).
FILE_SUFFIXES = frozenset(
    {
        "exe",
        "dll",
        "bat",
        "cmd",
        "ps1",
        "vbs",
        "vbe",
        "lnk",
        "hta",
        "doc",
        "docx",
        "docm",
        "xls",
        "xlsx",
        "xlsm",
        "pdf",
        "tmp",
        "dat",
        "bin",
        "sys",
        "scr",
        "msi",
        "jar",
        "py",
        "sh",
        "txt",
        "log",
        "ini",
        "cfg",
        "json",
        "xml",
        "js",
        "jse",
        "wsf",
        "iso",
        "img",
        "rar",
        "7z",
        "elf",
        "dylib",
        "so",
        "plist",
        "dmg",
        "pkg",
        "apk",
        "chm",
        "rtf",
        "hwp",
    }
)
# Type column words -> observable kind.
TYPE_WORDS = {
    "ip": "ipv4-addr",
    "ipv4": "ipv4-addr",
    "ip-dst": "ipv4-addr",
    "ip-src": "ipv4-addr",
    "ipv4-addr": "ipv4-addr",
    "ipv6": "ipv6-addr",
    "ipv6-addr": "ipv6-addr",
    "domain": "domain-name",
    "hostname": "domain-name",
    "fqdn": "domain-name",
    "host": "domain-name",
    "domain-name": "domain-name",
    "url": "url",
    "uri": "url",
    "link": "url",
    "email": "email-addr",
    "email-addr": "email-addr",
    "email-src": "email-addr",
    "e-mail": "email-addr",
    "md5": "MD5",
    "sha1": "SHA-1",
    "sha-1": "SHA-1",
    "sha256": "SHA-256",
    "sha-256": "SHA-256",
    "hash": "hash",
    "filehash": "hash",
    "file-hash": "hash",
    "wallet": "wallet",
    "btc": "wallet",
    "bitcoin": "wallet",
    "eth": "wallet",
    "cryptocurrency-wallet": "wallet",
    "crypto-wallet": "wallet",
    "btc-address": "wallet",
}


def refang(value: str) -> str:
    """Undo the usual defanging of IOCs."""
    out = value.strip().strip("\"'")
    out = re.sub(r"^hxxp", "http", out, flags=re.IGNORECASE)
    out = re.sub(r"^fxp", "ftp", out, flags=re.IGNORECASE)
    for old, new in (
        ("[.]", "."),
        ("(.)", "."),
        ("{.}", "."),
        ("[dot]", "."),
        ("[:]", ":"),
        ("[://]", "://"),
        ("[@]", "@"),
        ("[at]", "@"),
    ):
        out = out.replace(old, new)
    return out


def classify(value: str, hint: str = "") -> tuple[str, str] | None:
    """Return (kind, normalised value) for an IOC, or None when it is not one; ``hint`` is a type column word."""
    kind = TYPE_WORDS.get(hint.strip().lower(), "") if hint else ""
    value = refang(value)
    if not value or any(c.isspace() for c in value):
        return None
    found = _detect(value)
    if found is None:
        return None
    if kind in ("", "hash") or kind == found[0]:
        return found
    if kind in ("ipv4-addr", "ipv6-addr") and found[0] in ("ipv4-addr", "ipv6-addr"):
        return found
    return None


def _detect(value: str) -> tuple[str, str] | None:
    if _URL.match(value):
        return "url", value
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return ("ipv4-addr" if address.version == 4 else "ipv6-addr"), str(address)
    if len(value) in _HASHES and _HEX.match(value):
        return _HASHES[len(value)], value.lower()
    if _ETH.match(value) or _BTC.match(value):
        return "wallet", value
    if "@" in value and _EMAIL.match(value) and _DOMAIN.match(value.rsplit("@", 1)[1].lower()):
        return "email-addr", value
    if _DOMAIN.match(value.lower()) and value.lower().rsplit(".", 1)[1] not in FILE_SUFFIXES:
        return "domain-name", value.lower().rstrip(".")
    return None


def pattern_for(kind: str, value: str) -> str:
    """A single-observable STIX pattern for one IOC."""
    literal = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if kind in _HASHES.values():
        return f"[file:hashes.'{kind}' = {literal}]"
    if kind.startswith("x509:"):
        return f"[x509-certificate:hashes.'{kind.removeprefix('x509:')}' = {literal}]"
    if kind == "wallet":
        return f"[cryptocurrency-wallet:value = {literal}]"
    return f"[{kind}:value = {literal}]"


LABELS = {
    "x509:SHA-256": "certificate SHA-256",
    "x509:SHA-1": "certificate SHA-1",
    "x509:MD5": "certificate MD5",
    "MD5": "file MD5",
    "SHA-1": "file SHA-1",
    "SHA-256": "file SHA-256",
    "wallet": "crypto wallet",
    "ipv4-addr": "IP",
    "ipv6-addr": "IPv6",
    "domain-name": "domain",
    "url": "URL",
    "email-addr": "e-mail",
}


@register("csv")
class IocList(Connector):
    """A CSV (header row naming value / type / notes columns) or plain-text list of IOCs."""

    name = "csv"
    text_mode = False

    def __init__(
        self,
        *args: object,
        actor: str | None = None,
        value_column: str | None = None,
        type_column: str | None = None,
        notes_column: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.actor = actor
        self.columns = (value_column, type_column, notes_column)
        self.now = stix.format_timestamp(clock.now_us() // 1000 * 1000)

    def items(self, data: bytes) -> Iterable[Item | Refusal]:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        built: dict[str, dict] = {}
        for entry in self._entries(text):
            if isinstance(entry, Refusal):
                yield entry
                continue
            kind, norm, note, extra = entry
            obj = self._indicator(kind, norm, note)
            built.setdefault(obj["id"], {**obj, **extra})
        stored = self._stored(list(built))
        actor_obj, created = self._actor() if self.actor else (None, False)
        if actor_obj is not None and created:
            yield Item(actor_obj)
        for obj in built.values():
            obj = stored.get(obj["id"], obj)
            yield Item(obj)
            if actor_obj is not None:
                rel = self._relationship(obj, actor_obj)
                yield Item(self._stored([rel["id"]]).get(rel["id"], rel))

    def _entries(self, text: str) -> Iterable[Refusal | tuple[str, str, str, dict]]:
        """(kind, value, note, extra properties) per IOC, or a refusal naming the line."""
        rows = self._text_rows(text) if self.text_mode else self._csv_rows(text)
        for line_no, value, hint, note in rows:
            found = classify(value, hint)
            if found is None:
                yield Refusal(
                    f"line {line_no}", f"not a recognised IOC{f' of type {hint}' if hint else ''}: {value[:80]!r}"
                )
                continue
            yield found[0], found[1], note, {}

    # -- reading

    def _csv_rows(self, text: str) -> Iterable[tuple[int, str, str, str]]:
        lines = [
            (n, line)
            for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith(("#", "//"))
        ]
        if not lines:
            return
        reader = csv.reader([line for _, line in lines])
        header = [h.strip().lower() for h in next(reader)]
        value_i, type_i, note_i = (
            self._column(header, wanted, names, required)
            for wanted, names, required in zip(
                self.columns, (VALUE_COLUMNS, TYPE_COLUMNS, NOTE_COLUMNS), (True, False, False), strict=True
            )
        )
        for (line_no, _), row in self.reading(zip(lines[1:], reader, strict=True), len(lines) - 1, "rows"):
            value, hint, note = (
                row[i].strip() if i is not None and i < len(row) else "" for i in (value_i, type_i, note_i)
            )
            if value:
                yield line_no, value, hint, note

    @staticmethod
    def _column(header: list[str], wanted: str | None, names: tuple[str, ...], required: bool) -> int | None:
        if wanted is not None:
            if wanted.strip().lower() not in header:
                raise FeedError(f"no column named {wanted!r} in the header {header}")
            return header.index(wanted.strip().lower())
        found = next((header.index(n) for n in names if n in header), None)
        if found is None and required:
            raise FeedError(
                f"no value column in the header {header}: name one of {', '.join(VALUE_COLUMNS)} or give --value-column"
            )
        return found

    def _text_rows(self, text: str) -> Iterable[tuple[int, str, str, str]]:
        heading = ""
        lines = text.splitlines()
        for line_no, line in self.reading(enumerate(lines, 1), len(lines), "lines"):
            line = line.strip()
            if not line or line.startswith(("#", "//", ";")):
                continue
            first = line.split()[0].rstrip(",;")
            if classify(first) is not None and (len(line.split()) == 1 or classify(line) is None):
                yield line_no, first, "", heading
            else:
                heading = line.rstrip(":").strip()

    # -- building

    def _indicator(self, kind: str, value: str, note: str) -> dict:
        ident = uuid.uuid5(NAMESPACE, f"{self.source_label}|{kind}|{value}")
        obj = {
            "type": "indicator",
            "spec_version": "2.1",
            "id": f"indicator--{ident}",
            "created_by_ref": self.target.identity_id,
            "created": self.now,
            "modified": self.now,
            "name": f"{LABELS[kind]} {value}" if not note else f"{note}: {value}"[:250],
            "indicator_types": ["malicious-activity"],
            "pattern": pattern_for(kind, value),
            "pattern_type": "stix",
            "valid_from": self.now,
            "external_references": [{"source_name": "feed", "description": self.source_label}],
        }
        if note:
            obj["description"] = note
        return obj

    def _relationship(self, indicator: dict, actor: dict) -> dict:
        ident = uuid.uuid5(NAMESPACE, f"{indicator['id']}|indicates|{actor['id']}")
        return {
            "type": "relationship",
            "spec_version": "2.1",
            "id": f"relationship--{ident}",
            "created_by_ref": self.target.identity_id,
            "created": self.now,
            "modified": self.now,
            "relationship_type": "indicates",
            "source_ref": indicator["id"],
            "target_ref": actor["id"],
        }

    def _actor(self) -> tuple[dict, bool]:
        """The named intrusion set, and whether this import creates it."""
        assert self.actor is not None
        found = find_intrusion_set(self.hub, self.target.partner_pk, self.target.collection.api_root, self.actor)
        if found is not None:
            return found, False
        ident = uuid.uuid5(NAMESPACE, f"intrusion-set|{self.actor.strip().lower()}")
        obj = {
            "type": "intrusion-set",
            "spec_version": "2.1",
            "id": f"intrusion-set--{ident}",
            "created_by_ref": self.target.identity_id,
            "created": self.now,
            "modified": self.now,
            "name": self.actor.strip(),
        }
        return self._stored([obj["id"]]).get(obj["id"], obj), True

    def _stored(self, ids: list[str]) -> dict[str, dict]:
        """The latest stored version of each id already in the target collection."""
        with self.hub.session(write=False) as session:
            rows = writes.stored_versions(session, self.target.collection.pk, ids)
        latest: dict[str, tuple[int, str]] = {}
        for (stix_id, version_us), raw in rows.items():
            if stix_id not in latest or version_us > latest[stix_id][0]:
                latest[stix_id] = (version_us, raw)
        return {k: orjson.loads(raw) for k, (_, raw) in latest.items()}


@register("text")
class TextIocList(IocList):
    """A free-text IOC list: one value per line, section headings and comments tolerated."""

    name = "text"
    text_mode = True


def find_intrusion_set(hub: Hub, partner_pk: int, root: str, name: str) -> dict | None:
    """Find an intrusion set by name or alias among those the partner can read in ``root``."""
    wanted = name.strip().lower()
    with hub.session(write=False) as session:
        snap = hub.snapshot(session)
        for collection in snap.collections_of(root):
            query = reads.VersionQuery(
                collection_pk=collection.pk,
                read=snap.read_filter(partner_pk, collection),
                originator_pk=partner_pk,
                types=("intrusion-set",),
                limit=10_000,
            )
            rows, _ = reads.page(session, query, ("raw",))
            for row in rows:
                obj = orjson.loads(row.raw)
                names = [obj.get("name", ""), *(obj.get("aliases") or [])]
                if not obj.get("revoked") and any(isinstance(n, str) and n.lower() == wanted for n in names):
                    return obj
    return None


ECS_TLP = {
    "white": TLP.CLEAR,
    "clear": TLP.CLEAR,
    "green": TLP.GREEN,
    "amber": TLP.AMBER,
    "amber+strict": TLP.AMBER_STRICT,
    "red": TLP.RED,
}


@register("ecs")
class EcsList(IocList):
    """Elastic Common Schema NDJSON (``threat.indicator.*``), e.g. Elastic Security Labs' indicator files."""

    name = "ecs"

    def _entries(self, text: str) -> Iterable[Refusal | tuple[str, str, str, dict]]:
        lines = text.splitlines()
        for line_no, line in self.reading(enumerate(lines, 1), len(lines), "lines"):
            if not line.strip():
                continue
            try:
                doc = orjson.loads(line)
                indicator = doc["threat"]["indicator"]
                assert isinstance(indicator, dict)
            except (orjson.JSONDecodeError, KeyError, TypeError, AssertionError):
                yield Refusal(f"line {line_no}", "not an ECS document with a threat.indicator object")
                continue
            found = ecs_observable(indicator)
            if found is None:
                yield Refusal(
                    f"line {line_no}", f"no supported observable in threat.indicator (type {indicator.get('type')!r})"
                )
                continue
            extra: dict = {}
            tlp = ECS_TLP.get(str((indicator.get("marking") or {}).get("tlp", "")).lower())
            if tlp is not None:
                extra["object_marking_refs"] = [stix.TLP2_MARKINGS[tlp]["id"]]
            refs = [r for r in _as_list(indicator.get("reference")) if isinstance(r, str)]
            if refs:
                extra["external_references"] = [
                    {"source_name": "feed", "description": self.source_label},
                    *({"source_name": "reference", "url": r} for r in refs),
                ]
            if isinstance(indicator.get("description"), str):
                extra["description"] = indicator["description"]
            yield found[0], found[1], "", extra


def _as_list(value: object) -> list:
    return value if isinstance(value, list) else [value] if value is not None else []


def ecs_observable(indicator: dict) -> tuple[str, str] | None:
    """The (kind, value) of an ECS threat.indicator: ip, domain, url, email, file or x509 hash."""
    url = indicator.get("url")
    candidates: list[tuple[str, object]] = [
        ("ip", _first(indicator.get("ip"))),
        ("domain", _first(indicator.get("domain")) or (url.get("domain") if isinstance(url, dict) else None)),
        ("url", _first(url) if not isinstance(url, dict) else url.get("full") or url.get("original")),
        ("email", (indicator.get("email") or {}).get("address") if isinstance(indicator.get("email"), dict) else None),
    ]
    for prefix in ("file", "x509"):
        hashes = ((indicator.get(prefix) or {}).get("hash") or {}) if isinstance(indicator.get(prefix), dict) else {}
        for name, label in (("sha256", "SHA-256"), ("sha1", "SHA-1"), ("md5", "MD5")):
            value = _first(hashes.get(name)) if isinstance(hashes, dict) else None
            if isinstance(value, str) and classify(value) == (label, value.lower()):
                return (label if prefix == "file" else f"x509:{label}"), value.lower()
    for _field, value in candidates:
        found = classify(value) if isinstance(value, str) else None
        if found is not None:
            return found
    return None


def _first(value: object) -> object:
    return value[0] if isinstance(value, list) and value else value
