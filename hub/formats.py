"""The flat feed formats as rules on STIX objects: which formats exist, what each lists, and what may
be a blocklist line. Pure: the feed endpoints (:mod:`feeds.export`) and the delivery ledger
(:mod:`hub.ledger`) both judge a version by these functions, under the same collection limits, so
"who received" names exactly what a feed body held.

A blocklist line is one host or a small network, never the internet: an address or a network no
wider than the collection's ``BlocklistLimits`` (default /24 and /48) and not a loopback, multicast,
link-local, reserved or unspecified one; a strict host name (letters, digits and inner hyphens in at
least two labels); a URL of http, https, ftp or ftps with such a host or an address; 64 hex digits.
A value on a warninglist (:mod:`hub.warninglists`: a private or special-use address or name, a public
DNS resolver, a top site, the hash of an empty file...) is left out too, unless the collection allows
warninglisted values. Every other value stays in the STIX, CSV and ECS feeds, with
:func:`blocklist_reason` saying why.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from hub import stix, warninglists

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


def listed(fmt: str, obj: dict, at_us: int, include: str = "", *, limits: BlocklistLimits | None) -> bool:
    """Tell whether a response in format ``fmt`` made at ``at_us`` lists this object version.

    The delivery ledger asks this of every version a feed response's range covers, so that "who
    received" names exactly what the body held: active indicators (or, with ``include=withdrawn``,
    withdrawn ones too; blocklists then list only the withdrawn values), of the format's kind, and in
    a blocklist only the values :func:`blocklist_problem` accepts under the collection's ``limits``.
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
    return gone == (include == "withdrawn") and blocklist_value(fmt, obj, limits) is not None


def blocklist_value(fmt: str, obj: dict, limits: BlocklistLimits | None) -> str | None:
    """The line blocklist ``fmt`` writes for an indicator, or None when it lists no value of it."""
    found = observable(obj)
    if found is None or found[0] not in BLOCKLISTS[fmt] or blocklist_problem(found[0], found[1], limits):
        return None
    # URLs without the scheme, as PAN-OS external dynamic lists expect.
    line = found[1].split("://", 1)[1] if fmt == "url.txt" and "://" in found[1] else found[1]
    return line or None


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


@dataclass(frozen=True)
class BlocklistLimits:
    """What a collection's blocklists may list: networks no wider than these prefixes, warninglisted values or not."""

    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    allow_warninglisted: bool = False


IPV4_PREFIX_BOUNDS = (8, 32)  # a collection may allow at most a /8, or only single addresses
IPV6_PREFIX_BOUNDS = (16, 128)
URL_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# Addresses that name no host on the internet: a firewall blocking one cuts off itself, everyone or nothing.
# 0.0.0.0, 127/8, 224/4, 169.254/16, 240/4 (255.255.255.255 included) and their IPv6 counterparts.
_SPECIAL = {
    "is_unspecified": "the unspecified address",
    "is_loopback": "a loopback address",
    "is_multicast": "a multicast address",
    "is_link_local": "a link-local address",
    "is_reserved": "a reserved address",
}
# IPv6 prefixes that carry IPv4 addresses (NAT64, 6to4): 64:ff9b::/96 is the whole IPv4 internet.
_EMBEDS_IPV4 = ((ipaddress.IPv6Network("64:ff9b::/96"), 96), (ipaddress.IPv6Network("2002::/16"), 16))


def blocklist_reason(obj: dict, limits: BlocklistLimits) -> str:
    """Why an indicator is in no blocklist, for the CSV and ECS rows; "" when its blocklist lists it."""
    found = observable(obj)
    if found is None:
        return "not a single-value pattern"
    if not any(found[0] in kinds for kinds in BLOCKLISTS.values()):
        return f"no blocklist lists {found[0]} values"
    return blocklist_problem(found[0], found[1], limits) or ""


def blocklist_problem(kind: str, value: str, limits: BlocklistLimits | None) -> str | None:
    """Why a value cannot be one line of its blocklist, or None when it can.

    A published value must never add lines of its own, nor block more than one host or a small network:
    addresses and networks no wider than the collection's ``limits``, strict host names, URLs with a
    host; nor a value on a warninglist, unless ``limits`` allow them. ``limits`` None judges a delivery
    recorded before the hub kept them: only the line rule held.
    """
    problem = _line_problem(kind, value, limits)
    if problem is not None or limits is None or limits.allow_warninglisted:
        return problem
    found = warninglists.match(kind, value)
    return None if found is None else f"{found}, a benign value"


def warninglist_note(obj: dict, limits: BlocklistLimits) -> str | None:
    """Say which warninglist an indicator's value is on and what the blocklists do with it; None when on none."""
    found = observable(obj)
    if found is None or not any(found[0] in kinds for kinds in BLOCKLISTS.values()):
        return None
    listed = warninglists.match(found[0], found[1])
    if listed is None:
        return None
    if limits.allow_warninglisted:
        return f"{listed}: its blocklist lists it anyway (the collection allows warninglisted values)"
    return f"{listed}: left out of the blocklists"


def _line_problem(kind: str, value: str, limits: BlocklistLimits | None) -> str | None:
    if not value or not value.isprintable() or any(ch.isspace() for ch in value):
        return "empty, or holds whitespace or control characters"
    if kind == "file:SHA-256":
        return None if _HEX64.match(value) else "not 64 hexadecimal digits"
    if limits is None:
        return None if kind not in ("ipv4-addr", "ipv6-addr") or _network(value) else "not an address or network"
    if kind in ("ipv4-addr", "ipv6-addr"):
        return _ip_problem(kind, value, limits)
    if kind == "domain-name":
        return _host_problem(value)
    if kind == "url":
        return _url_problem(value, limits)
    return f"no blocklist lists {kind} values"


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def _ip_problem(kind: str, value: str, limits: BlocklistLimits) -> str | None:
    net = _network(value)
    version = 4 if kind == "ipv4-addr" else 6
    if net is None or net.version != version:
        return f"not an IPv{version} address or network"
    limit = limits.ipv4_prefix if version == 4 else limits.ipv6_prefix
    if net.prefixlen < limit:
        return f"prefix /{net.prefixlen} wider than the collection's /{limit} limit"
    embedded = _embedded_ipv4_prefix(net) if isinstance(net, ipaddress.IPv6Network) else None
    if embedded is not None and embedded < limits.ipv4_prefix:
        return f"it carries an IPv4 prefix /{embedded}, wider than the collection's /{limits.ipv4_prefix} limit"
    special = next((what for name, what in _SPECIAL.items() if getattr(net, name)), None)
    return None if special is None else f"{special}, not a host on the internet"


def _embedded_ipv4_prefix(net: ipaddress.IPv6Network) -> int | None:
    """The IPv4 prefix a NAT64 or 6to4 network covers, e.g. /0 for 64:ff9b::/96; None for other networks."""
    for outer, offset in _EMBEDS_IPV4:
        if net.overlaps(outer):
            return max(net.prefixlen, outer.prefixlen) - offset
    return None


def _host_problem(value: str) -> str | None:
    """Why a value is not a host name a firewall can block (a strict rule: no wildcards, no IDN in Unicode)."""
    if not value.isascii():
        return "not an ASCII host name (publish the IDNA form, xn--...)"
    labels = value.split(".")
    if len(value) > 253 or len(labels) < 2:
        return "not a host name of at least two labels"
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None:
        return f"label {bad!r} is not 1-63 letters, digits or inner hyphens"
    if labels[-1].isdigit():
        return "an address, not a host name"
    return None


def _url_problem(value: str, limits: BlocklistLimits) -> str | None:
    if "\\" in value:
        return "holds a backslash"
    try:
        parts = urllib.parse.urlsplit(value)
        _ = parts.port  # a port that is not a number from 0 to 65535 raises
    except ValueError as exc:
        return f"not a URL ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in URL_SCHEMES or not value.lower().startswith(scheme + "://"):
        return f"not a URL of {', '.join(sorted(URL_SCHEMES))}"
    if parts.username is not None or parts.password is not None:
        return "holds user information before the host"
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        problem = _host_problem(host)
        return None if problem is None else f"host {host!r}: {problem}"
    return _ip_problem(f"ipv{address.version}-addr", host, limits)
