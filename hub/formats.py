"""The flat feed formats as rules on STIX objects: which formats exist, what each lists, and what may
be a blocklist line. Pure: the feed endpoints (:mod:`feeds.export`) and the delivery ledger
(:mod:`hub.ledger`) both judge a version by these functions, so "who received" names exactly what a
feed body held.
"""

from __future__ import annotations

import ipaddress
import re

from hub import stix

FORMATS = {
    "stix": "application/stix+json;version=2.1",
    "csv": "text/csv; charset=utf-8",
    "ecs": "application/x-ndjson",
    "ip.txt": "text/plain; charset=utf-8",
    "domain.txt": "text/plain; charset=utf-8",
    "url.txt": "text/plain; charset=utf-8",
    "sha256.txt": "text/plain; charset=utf-8",
}
BLOCKLISTS = {
    "ip.txt": ("ipv4-addr", "ipv6-addr"),
    "domain.txt": ("domain-name",),
    "url.txt": ("url",),
    "sha256.txt": ("file:SHA-256",),
}
_SIMPLE = re.compile(r"^\[\s*([a-z0-9-]+):([A-Za-z0-9_.'-]+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*\]$")
_HEX64 = re.compile(r"^[0-9A-Fa-f]{64}$")


def listed(fmt: str, obj: dict, at_us: int, include: str = "") -> bool:
    """Tell whether a response in format ``fmt`` made at ``at_us`` lists this object version.

    The delivery ledger asks this of every version a feed response's range covers, so that "who
    received" names exactly what the body held: active indicators (or, with ``include=withdrawn``,
    withdrawn ones too; blocklists then list only the withdrawn values), of the format's kind.
    """
    gone = withdrawn(obj, at_us)
    if gone and include != "withdrawn":
        return False
    if fmt == "stix":
        return True
    if obj.get("type") != "indicator":
        return False
    if fmt not in BLOCKLISTS:
        return True
    found = observable(obj)
    if found is None or found[0] not in BLOCKLISTS[fmt] or gone != (include == "withdrawn"):
        return False
    value = found[1].split("://", 1)[1] if fmt == "url.txt" and "://" in found[1] else found[1]
    return blocklist_safe(found[0], value)


def withdrawn(obj: dict, now_us: int) -> bool:
    """Tell whether an object is revoked or past its ``valid_until``."""
    if obj.get("revoked") is True:
        return True
    until = obj.get("valid_until")
    try:
        return isinstance(until, str) and stix.parse_timestamp(until) <= now_us
    except ValueError:
        return False


def observable(obj: dict) -> tuple[str, str] | None:
    """The (type, value) of a single-observable pattern, e.g. ("ipv4-addr", "198.51.100.7")."""
    found = _SIMPLE.match(obj.get("pattern") or "") if obj.get("pattern_type", "stix") == "stix" else None
    if found is None:
        return None
    kind, path, value = found.group(1), found.group(2), re.sub(r"\\(.)", r"\1", found.group(3))
    if kind == "file" and path.startswith("hashes."):
        return f"file:{path.removeprefix('hashes.').strip(chr(39))}", value
    if path != "value":
        return None
    return kind, value


def blocklist_safe(kind: str, value: str) -> bool:
    """Tell whether a value can be one blocklist line: a published value must never add lines of its own."""
    if kind in ("ipv4-addr", "ipv6-addr"):
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            return False
        return True
    if kind == "file:SHA-256":
        return bool(_HEX64.match(value))
    return bool(value) and value.isprintable() and not any(ch.isspace() for ch in value)
