"""What an analyst looks an object up by: its name and the observable values it carries.

Pure, like the rest of :mod:`hub.stix`. :func:`observables` gives the values an object names (an
indicator's ``path = 'value'`` comparisons, a cyber-observable's ``value``, hashes and file name);
:func:`search_terms` turns an object into the lower-cased terms the admin panel's search matches by
prefix (``hub.store.values`` keeps them in the ``object_values`` table, filled at ingest):

- ``name``: the name and each alias (``aliases``, ``x_mitre_aliases``), each also from each of its
  later words on (words are separated by white space: "Lazarus Group (C2)" is found by "c2)");
- the observable's path (``ipv4-addr:value``, ``file:hashes.SHA-256``, ...): the value itself;
- ``domain``: the parent domains of a domain name, and the host of a URL or an e-mail address and its
  parents, so that "evil.example" finds ``cdn.evil.example`` and ``http://evil.example/x``.

Terms are cut to :data:`TERM_LENGTH` characters (a longer search matches on its first ones), each term
is kept once (under the first kind that gave it) and an object gives at most :data:`MAX_TERMS` of them,
so a hostile pattern cannot make one version cost more than a bounded number of rows.
"""

from __future__ import annotations

import itertools
import re
import urllib.parse

from hub.stix.patterns import pattern_equalities

TERM_LENGTH = 128
MAX_TERMS = 64
NAME_WORDS = 8  # a name is found from each of its first words on
_WORD = re.compile(r"(?<!\S)[^\w\s]*(\w)")  # a word: after white space, from its first letter or digit
_HASHES = ("SHA-256", "SHA-1", "MD5", "SHA-512", "SSDEEP", "TLSH")


def observables(obj: dict) -> list[tuple[str, str]]:
    """The (path, value) pairs an object names, e.g. ``[("ipv4-addr:value", "198.51.100.7")]``, in its order."""
    kind = obj.get("type")
    out: list[tuple[str, str]] = []
    if kind == "indicator":
        if obj.get("pattern_type", "stix") == "stix" and isinstance(obj.get("pattern"), str):
            out = pattern_equalities(obj["pattern"])
    elif isinstance(kind, str):
        if isinstance(obj.get("value"), str):
            out.append((f"{kind}:value", obj["value"]))
        hashes = obj.get("hashes")
        if isinstance(hashes, dict):
            ordered = sorted(hashes, key=lambda h: _HASHES.index(h) if h in _HASHES else len(_HASHES))
            out += [(f"{kind}:hashes.{h}", hashes[h]) for h in ordered if isinstance(hashes[h], str)]
        if kind == "file" and isinstance(obj.get("name"), str):
            out.append(("file:name", obj["name"]))
    return [(path, value) for path, value in out if value]


def display_name(obj: dict) -> str:
    """The name an object shows in lists: its ``name``, else "" (relationships and most observables have none)."""
    name = obj.get("name")
    return name if isinstance(name, str) else ""


def search_terms(obj: dict) -> list[tuple[str, str]]:
    """The (kind, term) pairs the panel's search finds an object by, lower-cased, each term once."""
    found: list[tuple[str, str]] = []
    for path, value in observables(obj):
        found.append((path, value))
        found += [("domain", host) for host in _hosts(path, value)]
    names = [display_name(obj)]
    for key in ("aliases", "x_mitre_aliases"):
        aliases = obj.get(key)
        names += [a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else []
    for name in names:
        words = itertools.islice(_WORD.finditer(name), NAME_WORDS)
        found += [("name", name[word.start(1) :]) for word in words]
    out: dict[str, str] = {}
    for kind, text in found:
        term = normalise(text)
        if term and term not in out:
            out[term] = kind
            if len(out) == MAX_TERMS:
                break
    return [(kind, term) for term, kind in out.items()]


def normalise(text: str) -> str:
    """A search term as stored and as searched for: without NUL (no text column holds it), trimmed,
    lower-cased, cut to :data:`TERM_LENGTH`."""
    return text.replace("\x00", "").strip().lower()[:TERM_LENGTH]


def _hosts(path: str, value: str) -> list[str]:
    """The domains a value lies under: a domain's parents; a URL's or e-mail address's host and its parents."""
    if path.startswith("domain-name:"):
        host, own = value, False
    elif path.startswith("url:"):
        try:
            host, own = urllib.parse.urlsplit(value).hostname or "", True
        except ValueError:
            return []
    elif path.endswith("email-addr:value") or path.endswith("from_ref.value"):
        host, own = value.rpartition("@")[2], True
    else:
        return []
    labels = host.strip(".").split(".")
    if len(labels) < 2 or labels[-1].isdigit():
        return [host] if own and host else []  # an address: only the URL's own host
    first = 0 if own else 1
    return [".".join(labels[i:]) for i in range(first, len(labels) - 1)]
