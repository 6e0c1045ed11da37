"""Benign values that a blocklist must never carry: the MISP warninglists and the private and special-use ranges.

A value is *warninglisted* when blocking it would hurt the partner that blocks it rather than an
attacker: a private or special-use address or name (RFC 1918, RFC 6598 carrier-grade NAT, RFC 4193
unique local, documentation and benchmarking ranges, names under ``.internal``, ``.local``, ``.test``,
``.example``...), a public DNS resolver, a big provider's mail servers, a top site, a URL shortener,
the hash of an empty or well-known benign file. The hub's own table (``HUB_LISTS``) is checked first,
then the chosen MISP lists (``MISP_LISTS``), which the ``pymispwarninglists`` package ships inside its
wheel: nothing is fetched at run time.

Only lists of values nobody should block are used; lists of shared infrastructure that attackers rent
too (cloud and VPN ranges, dynamic DNS zones, the top-million lists) are left out, since C2 servers
live there. Host names match exactly (a subdomain of a top site is a precise block), except under the
special-use names, which match with every subdomain. A network matches when it overlaps a listed one.

Each kind's lists are loaded on its first check, once per process, and answers are cached: the
address lists take about 0.5-0.7 s to load and keep 20 MB, the hashes 0.15 s and 11 MB, the host
names 0.05 s and 8 MB; a check then costs about 5 µs for an address, 2 µs for a name, 8 µs for a URL,
1 µs for a hash, and 0.2 µs once cached (README, *Exporting to SIEMs and firewalls*). Pure: no Flask,
no SQL.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import ipaddress
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class Match:
    """The warninglist a value is on: ``source`` "hub" or "MISP", the list's id and its name."""

    source: str
    list_id: str
    name: str

    def __str__(self) -> str:
        return f"on the {self.source} warninglist {self.list_id} ({self.name})"


# id, name, networks or name suffixes: checked before the MISP lists, so these names win.
HUB_LISTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("rfc1918", "RFC 1918 private addresses", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("rfc6598", "RFC 6598 shared address space (carrier-grade NAT)", ("100.64.0.0/10",)),
    ("rfc4193", "RFC 4193 unique local IPv6 addresses", ("fc00::/7",)),
    (
        "documentation",
        "documentation addresses (RFC 5737, RFC 3849, RFC 9637)",
        ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20"),
    ),
    ("rfc2544", "RFC 2544 benchmarking addresses", ("198.18.0.0/15", "2001:2::/48")),
    (
        "special-purpose",
        "RFC 6890 special-purpose addresses",
        ("0.0.0.0/8", "192.0.0.0/24", "192.88.99.0/24", "100::/64"),
    ),
    (
        "non-public-names",
        "names that resolve only inside a network (RFC 2606, RFC 6761, RFC 6762, RFC 8375, ICANN .internal)",
        (
            "internal",
            "local",
            "localhost",
            "localdomain",
            "test",
            "example",
            "invalid",
            "lan",
            "home",
            "corp",
            "intranet",
            "private",
            "home.arpa",
        ),
    ),
)
# The MISP lists used, by the kind of value they hold; the rest of the package is never read.
MISP_LISTS: dict[str, tuple[str, ...]] = {
    "ip": (
        "rfc1918",
        "rfc5735",
        "rfc6598",
        "rfc3849",
        "ipv6-linklocal",
        "multicast",
        "public-dns-v4",
        "public-dns-v6",
        "sinkholes",
        "crl-ip",
        "umbrella-blockpage-v4",
        "umbrella-blockpage-v6",
        "microsoft-office365-ip",
        "microsoft-office365-cn",
        "smtp-receiving-ips",
        "smtp-sending-ips",
        "google-gmail-sending-ips",
    ),
    "name": ("rfc6761",),  # special-use names: every subdomain matches too
    "host": (
        "public-dns-hostname",
        "captive-portals",
        "crl-hostname",
        "umbrella-blockpage-hostname",
        "whats-my-ip",
        "url-shortener",
        "public-ipfs-gateways",
        "lots-project",
        "google",
        "microsoft",
        "microsoft-office365",
        "microsoft-win10-connection-endpoints",
        "security-provider-blogpost",
        "bank-website",
        "alexa",
        "moz-top500",
        "cisco_top1000",
        "cisco_top5k",
        "cisco_top10k",
        "cisco_top20k",
        "majestic_million",
        "tranco10k",
        "second-level-tlds",
        "tlds",
    ),
    "sha256": (
        "empty-hashes",
        "eicar.com",
        "common-ioc-false-positive",
        "ti-falsepositives",
        "nioc-filehash",
        "mozilla-CA",
        "mozilla-IntermediateCA",
    ),
}
# The package's data, found without importing it: its module imports requests and more (130 ms).
_SPEC = importlib.util.find_spec("pymispwarninglists")
LISTS_DIR = Path(_SPEC.origin if _SPEC and _SPEC.origin else ".").parent / "data" / "misp-warninglists" / "lists"
_HEX = frozenset("0123456789abcdef")


def match(kind: str, value: str) -> Match | None:
    """The warninglist a blocklist value of STIX ``kind`` is on, or None when it is on none.

    ``kind`` is ``ipv4-addr``, ``ipv6-addr``, ``domain-name``, ``url`` or ``file:SHA-256``; ``value`` a
    value its blocklist would list (:func:`hub.formats.blocklist_problem` found nothing wrong with it).
    """
    return _match(kind, value)


@functools.lru_cache(maxsize=65_536)
def _match(kind: str, value: str) -> Match | None:
    if kind in ("ipv4-addr", "ipv6-addr"):
        return _ip_match(value)
    if kind == "domain-name":
        return _host_match(value.lower(), exact=True)
    if kind == "url":
        return _url_match(value)
    if kind == "file:SHA-256":
        return _index("sha256").get(value.lower())
    return None


def _url_match(value: str) -> Match | None:
    """A URL's host: a special-use name or a listed address; a top site only for its home page."""
    try:
        parts = urllib.parse.urlsplit(value)
        host = (parts.hostname or "").lower()
    except ValueError:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return _host_match(host, exact=parts.path in ("", "/") and not parts.query)
    return _ip_match(host)


def _host_match(host: str, *, exact: bool) -> Match | None:
    labels = host.split(".")
    names = _index("name")
    for i in range(len(labels)):
        found = names.get(".".join(labels[i:]))
        if found is not None:
            return found
    if not exact:
        return None
    hosts = _index("host")
    return hosts.get(host) or (hosts.get(host[4:]) if host.startswith("www.") else None)


_Span = tuple[int, int, int, int]  # first and last address as integers, prefix length, address bits


class _Networks:
    """Listed networks of one IP version, sorted by first address, with the furthest last address so far.

    Whether a network overlaps a listed one is one binary search: the listed networks starting at or
    before its last address overlap it if the furthest of their ends reaches its first address. Only
    for a value that overlaps (rare) is the most specific list looked up, by prefix length, to name it.
    """

    def __init__(self) -> None:
        self.by_prefix: dict[int, dict[int, Match]] = {}
        self.spans: list[tuple[int, int, int, Match]] = []  # first, order added, last, list

    def add(self, net: ipaddress.IPv4Network | ipaddress.IPv6Network, found: Match) -> None:
        shift = net.max_prefixlen - net.prefixlen
        self.by_prefix.setdefault(net.prefixlen, {}).setdefault(int(net.network_address) >> shift, found)
        self.spans.append((int(net.network_address), len(self.spans), int(net.broadcast_address), found))

    def finish(self) -> None:
        self.spans.sort(key=lambda s: (s[0], s[1]))
        self.prefixes = sorted(self.by_prefix, reverse=True)
        self.starts = [s[0] for s in self.spans]
        self.reach: list[tuple[int, Match]] = []  # the furthest last address among spans[: i + 1], and its list
        for _, _, last, found in self.spans:
            self.reach.append((last, found) if not self.reach or last > self.reach[-1][0] else self.reach[-1])

    def overlapping(self, span: _Span) -> Match | None:
        first, last, prefixlen, bits = span
        at = bisect.bisect_right(self.starts, last) - 1
        if at < 0 or self.reach[at][0] < first:
            return None
        for prefix in self.prefixes:  # a listed network holding this one, the most specific first
            if prefix <= prefixlen:
                found = self.by_prefix[prefix].get(first >> (bits - prefix))
                if found is not None:
                    return found
        inside = bisect.bisect_left(self.starts, first)  # else one inside it
        return self.spans[inside][3] if inside < len(self.starts) and self.starts[inside] <= last else self.reach[at][1]


def _ip_match(value: str) -> Match | None:
    try:  # an address parses in a third of the time a network does, and most values are addresses
        if "/" in value:
            net = ipaddress.ip_network(value, strict=False)
            version, span = net.version, (int(net.network_address), int(net.broadcast_address), net.prefixlen)
        else:
            address = ipaddress.ip_address(value)
            version, span = address.version, (int(address), int(address), address.max_prefixlen)
    except ValueError:
        return None
    bits = 32 if version == 4 else 128
    spans = [(version, (*span, bits))]
    if version == 6 and span[2] >= 96 and any(first <= span[0] and span[1] <= last for first, last in _CARRIERS):
        spans.append((4, (span[0] & 0xFFFFFFFF, span[1] & 0xFFFFFFFF, span[2] - 96, 32)))
    hub_nets, misp_nets = _index("ip")
    for table in hub_nets, misp_nets:
        for each_version, each in spans:
            found = table[each_version].overlapping(each)
            if found is not None:
                return found
    return None


# IPv6 prefixes whose last 32 bits are an IPv4 address, as (first, last): mapped (::ffff:10.0.0.1), NAT64.
_CARRIERS = tuple(
    (int(n.network_address), int(n.broadcast_address))
    for n in (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("64:ff9b::/96"))
)


_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}


def _index(kind: str) -> Any:
    """The lookup table of one kind of value, built on first use (once per process, under a lock)."""
    table = _LOADED.get(kind)
    if table is None:
        with _LOCK:
            table = _LOADED.get(kind)
            if table is None:
                table = _LOADED[kind] = _BUILDERS[kind]()
    return table


def _misp(list_id: str) -> tuple[Match, list[str]]:
    # The file as the package ships it (its WarningList class would also build a set of every entry).
    warninglist = orjson.loads((LISTS_DIR / list_id / "list.json").read_bytes())
    return Match("MISP", list_id, str(warninglist["name"])), [v for v in warninglist["list"] if isinstance(v, str)]


def _build_ip() -> tuple[dict[int, _Networks], dict[int, _Networks]]:
    hub_nets, misp_nets = {4: _Networks(), 6: _Networks()}, {4: _Networks(), 6: _Networks()}
    for list_id, name, ranges in HUB_LISTS:
        for value in ranges if list_id != "non-public-names" else ():
            net = ipaddress.ip_network(value)
            hub_nets[net.version].add(net, Match("hub", list_id, name))
    for list_id in MISP_LISTS["ip"]:
        found, values = _misp(list_id)
        for value in values:
            try:
                net = ipaddress.ip_network(value.strip(), strict=False)
            except ValueError:
                continue  # a stray entry that is no address
            misp_nets[net.version].add(net, found)
    for table in (*hub_nets.values(), *misp_nets.values()):
        table.finish()
    return hub_nets, misp_nets


def _names(list_ids: tuple[str, ...], builtin: bool) -> dict[str, Match]:
    out: dict[str, Match] = {}
    if builtin:
        list_id, name, suffixes = HUB_LISTS[-1]
        out.update((suffix, Match("hub", list_id, name)) for suffix in suffixes)
    for list_id in list_ids:
        found, values = _misp(list_id)
        for value in values:
            # ".example.com" and "*.example.com" name the domain and its subdomains: kept as the domain.
            host = value.strip().lower().removeprefix("*").strip(".")
            if host:
                out.setdefault(host, found)
    return out


def _build_sha256() -> dict[str, Match]:
    out: dict[str, Match] = {}
    for list_id in MISP_LISTS["sha256"]:
        found, values = _misp(list_id)
        for value in values:
            digest = value.strip().lower()
            if len(digest) == 64 and _HEX.issuperset(digest):
                out.setdefault(digest, found)
    return out


_BUILDERS = {
    "ip": _build_ip,
    "name": lambda: _names(MISP_LISTS["name"], builtin=True),
    "host": lambda: _names(MISP_LISTS["host"], builtin=False),
    "sha256": _build_sha256,
}
