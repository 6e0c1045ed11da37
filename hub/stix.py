"""Fast STIX 2.1 helpers: timestamps, TLP marking ids and object/pattern validation.

Pure functions over plain JSON values (dicts, lists, str, int, ...): no Flask, no SQL.
``validate`` checks one object against STIX 2.1 OS (required properties, property types,
identifiers, timestamps, markings, extensions, the TLP rule of §7.2.1.4 and, for
``pattern_type: stix`` indicators, the pattern) and explains every problem by naming
the property. Patterns go through a small hand-written recogniser for the common
SIEM subset; anything outside that subset is decided by stix2-patterns itself, so
``validate_pattern`` always gives the library's verdict.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from stix2patterns.v21.object_validator import HASHES_REGEX as _PATTERN_HASH_RULES

from hub.policy import TLP

__all__ = [
    "SCO_TYPES",
    "TLP1_MARKINGS",
    "TLP2_EXTENSION_DEFINITION",
    "TLP2_MARKINGS",
    "TLP_MARKING_IDS",
    "format_timestamp",
    "is_statement_marking",
    "stated_tlp",
    "marking_tlp",
    "object_version",
    "parse_filter_timestamp",
    "parse_timestamp",
    "validate",
    "validate_pattern",
]

# --------------------------------------------------------------------------------------
# TLP marking definitions (spec/sharing-and-siem.md a1-a3)

_TLP2_EXTENSION_ID = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"

TLP2_EXTENSION_DEFINITION: dict = {
    "type": "extension-definition",
    "spec_version": "2.1",
    "id": _TLP2_EXTENSION_ID,
    "name": "TLP 2.0",
    "description": "This defines TLP 2.0 as a STIX extension",
    "created": "2022-10-01T00:00:00.000Z",
    "modified": "2022-10-01T00:00:00.000Z",
    "created_by_ref": "identity--b3bca3c2-1f3d-4b54-b44f-dac42c3a8f01",
    "schema": "https://github.com/oasis-open/cti-stix-common-objects/tree/master/"
    "extension-definition-specifications/tlp-2.0",
    "version": "1.0.0",
    "extension_types": ["property-extension"],
}


def _tlp2_marking(uuid: str, name: str, value: str) -> dict:
    """Build one OASIS TLP 2.0 marking-definition object."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--" + uuid,
        "created": "2022-10-01T00:00:00.000Z",
        "name": name,
        "extensions": {_TLP2_EXTENSION_ID: {"extension_type": "property-extension", "tlp_2_0": value}},
    }


def _tlp1_marking(uuid: str, colour: str) -> dict:
    """Build one STIX 2.1 built-in (TLP 1.0) marking-definition object."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": "marking-definition--" + uuid,
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": "TLP:" + colour.upper(),
        "definition": {"tlp": colour},
    }


TLP2_MARKINGS: dict[TLP, dict] = {
    TLP.CLEAR: _tlp2_marking("94868c89-83c2-464b-929b-a1a8aa3c8487", "TLP:CLEAR", "clear"),
    TLP.GREEN: _tlp2_marking("bab4a63c-aed9-4cf5-a766-dfca5abac2bb", "TLP:GREEN", "green"),
    TLP.AMBER: _tlp2_marking("55d920b0-5e8b-4f79-9ee9-91f868d9b421", "TLP:AMBER", "amber"),
    TLP.AMBER_STRICT: _tlp2_marking(
        "939a9414-2ddd-4d32-a0cd-375ea402b003", "TLP:AMBER+STRICT", "amber+strict"
    ),
    TLP.RED: _tlp2_marking("e828b379-4e03-4974-9ac4-e53a884c97c1", "TLP:RED", "red"),
}

_TLP1_LEVELS = {"white": TLP.CLEAR, "green": TLP.GREEN, "amber": TLP.AMBER, "red": TLP.RED}

TLP1_MARKINGS: dict[str, dict] = {
    m["id"]: m
    for m in (
        _tlp1_marking("613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
        _tlp1_marking("34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
        _tlp1_marking("f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
        _tlp1_marking("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"),
    )
}

_OPENCTI_AMBER_STRICT_ID = "marking-definition--826578e1-40ad-459f-bc73-ede076f81f37"

TLP_MARKING_IDS: dict[str, TLP] = {
    **{m["id"]: level for level, m in TLP2_MARKINGS.items()},
    **{mid: _TLP1_LEVELS[m["definition"]["tlp"]] for mid, m in TLP1_MARKINGS.items()},
    _OPENCTI_AMBER_STRICT_ID: TLP.AMBER_STRICT,
}

_TLP2_BY_ID = {m["id"]: m for m in TLP2_MARKINGS.values()}


def marking_tlp(marking_ref: str) -> TLP | None:
    """Return the TLP level of a marking-definition id, or None if it is not a TLP id."""
    return TLP_MARKING_IDS.get(marking_ref) if isinstance(marking_ref, str) else None


_TLP2_VALUES = {"clear": TLP.CLEAR, "green": TLP.GREEN, "amber": TLP.AMBER, "amber+strict": TLP.AMBER_STRICT,
                "red": TLP.RED}
# "TLP:RED", "tlp: amber+strict", "TLP-WHITE", "TLP AMBER", as OpenCTI, MISP and people write them.
_STATED_TLP = re.compile(r"\bTLP\s*[:\-]?\s*(CLEAR|WHITE|GREEN|AMBER\s*\+\s*STRICT|AMBER|RED)\b", re.IGNORECASE)
_STATED_LEVELS = {"clear": TLP.CLEAR, "white": TLP.CLEAR, "green": TLP.GREEN, "amber": TLP.AMBER,
                  "amber+strict": TLP.AMBER_STRICT, "red": TLP.RED}


def stated_tlp(obj: dict) -> TLP | None:
    """The TLP level a marking-definition under a non-standard id states, if it states one; else None.

    A TLP is stated by the TLP 2.0 extension (``tlp_2_0``), or in the text of its ``name`` or
    ``statement`` (``"TLP:RED"``, the shape OpenCTI exports). Where several levels are stated, the
    strictest counts: a marking that says RED anywhere is never served as less.
    """
    if not isinstance(obj, dict) or obj.get("type") != "marking-definition":
        return None
    levels: list[TLP] = []
    ext = (obj.get("extensions") or {}).get(_TLP2_EXTENSION_ID)
    if isinstance(ext, dict) and isinstance(ext.get("tlp_2_0"), str):
        level = _TLP2_VALUES.get(ext["tlp_2_0"].strip().lower())
        levels.append(TLP.RED if level is None else level)  # an unknown TLP 2.0 value fails closed
    definition = obj.get("definition")
    texts = [obj.get("name"), definition.get("statement") if isinstance(definition, dict) else None]
    for text in texts:
        if isinstance(text, str):
            for found in _STATED_TLP.finditer(text):
                levels.append(_STATED_LEVELS["".join(found.group(1).lower().split())])
    return max(levels) if levels else None


def is_statement_marking(obj: dict) -> bool:
    """Tell whether ``obj`` is a statement marking (copyright, terms of use) and not a TLP one."""
    if not isinstance(obj, dict) or obj.get("type") != "marking-definition":
        return False
    if marking_tlp(obj.get("id")) is not None or stated_tlp(obj) is not None:
        # OpenCTI exports TLP:AMBER+STRICT and custom TLP levels as statements; the hub understands them as TLP.
        return False
    definition = obj.get("definition")
    return (
        obj.get("definition_type") == "statement"
        and isinstance(definition, dict)
        and isinstance(definition.get("statement"), str)
    )


# --------------------------------------------------------------------------------------
# Timestamps

# The regexes decide the accepted syntax; datetime.fromisoformat (C, fast) then checks the
# calendar (day of month, leap years, hours < 24, no leap second) and does the arithmetic.
_TS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_FILTER_TS_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
    r"(?:[Zz]|[+\- ][0-9]{2}:[0-9]{2})"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_EPOCH_FALLBACK = "1970-01-01T00:00:00.000Z"


def _iso_micros(text: str, iso: str) -> int:
    """Microseconds since the epoch of a syntactically checked ISO 8601 string."""
    try:
        # Fractions beyond microseconds are truncated, as fromisoformat does.
        return (datetime.fromisoformat(iso) - _EPOCH) // _ONE_US
    except ValueError:
        raise ValueError(f"{text!r} is not a valid timestamp: date or time of day out of range") from None


@functools.lru_cache(maxsize=8192)
def _parse_stix_timestamp(text: str) -> int:
    """Parse a string timestamp; cached because validate() reads most timestamps twice."""
    if _TS_RE.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not a STIX timestamp (YYYY-MM-DDTHH:MM:SS[.fraction]Z)")
    return _iso_micros(text, text)


def parse_timestamp(text: str) -> int:
    """Parse a STIX timestamp (RFC 3339, 'Z', 0-9 fraction digits) into microseconds since the epoch."""
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not a STIX timestamp (a string YYYY-MM-DDTHH:MM:SS[.fraction]Z)")
    return _parse_stix_timestamp(text)


def parse_filter_timestamp(text: str) -> int:
    """Parse a TAXII query timestamp leniently ('Z' or a UTC offset, URL-decoded '+') into microseconds."""
    value = text.strip() if isinstance(text, str) else ""
    if _FILTER_TS_RE.fullmatch(value) is None:
        raise ValueError(
            f"{text!r} is not a valid timestamp (YYYY-MM-DDTHH:MM:SS[.fraction] and Z, +hh:mm or -hh:mm)"
        )
    # A space is what URL decoding leaves of '+'.
    iso = value[:10] + "T" + value[11:].upper()
    if iso[-6] == " ":
        iso = iso[:-6] + "+" + iso[-5:]
    return _iso_micros(text, iso)


def format_timestamp(us: int) -> str:
    """Format microseconds since the epoch as 'YYYY-MM-DDTHH:MM:SS.ffffffZ'."""
    try:
        moment = _EPOCH + timedelta(microseconds=us)
    except OverflowError:
        raise ValueError(f"timestamp {us} us is outside years 0001-9999") from None
    # strftime('%Y') does not zero-pad years below 1000 on every platform.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def object_version(obj: dict) -> str:
    """Return the version timestamp of an object: 'modified', else 'created', else the epoch."""
    return obj.get("modified") or obj.get("created") or _EPOCH_FALLBACK


# --------------------------------------------------------------------------------------
# STIX patterns: a fast recogniser for a subset, stix2-patterns for everything else

# One findall() splits a pattern into tokens the way the STIX 2.1 ANTLR lexer does: the
# alternatives are ordered so that the first match is also the lexer's longest match, and
# the final catch-all makes every other character a token of its own (then rejected), so
# the tokens cover the whole input.
_PATTERN_TOKEN = re.compile(
    r"""[ \t\r\n]*(
      t'[0-9]{4}-(?:0[1-9]|1[012])-(?:0[1-9]|[12][0-9]|3[01])
        T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?Z'
    | h'(?:[0-9A-Fa-f]{2})*'
    | b'(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)'
    | '[^'\\]*(?:\\['\\][^'\\]*)*'
    | [A-Za-z_][A-Za-z0-9_-]*
    | [+-]?(?:[0-9]*\.[0-9]+|0|[1-9][0-9]*)
    | == | != | <> | <= | >=
    | [^ \t\r\n]
    )""",
    re.VERBOSE,
)
_KEYWORDS = (
    "AND OR NOT FOLLOWEDBY LIKE MATCHES ISSUPERSET ISSUBSET EXISTS LAST IN START STOP SECONDS "
    "WITHIN REPEATS TIMES"
).split()
# Kinds of the tokens that are always the same text; other kinds are derived in _token_kind.
_FIXED_KINDS = {
    **{k: k for k in _KEYWORDS},
    **{p: p for p in ":.,()[]*"},
    **dict.fromkeys(("=", "==", "!=", "<>"), "eq"),
    **dict.fromkeys(("<", "<=", ">", ">="), "ord"),
    "true": "bool",
    "false": "bool",
}
_KNOWN_KINDS = dict(_FIXED_KINDS)
_LITERAL_PREFIXES = {"t": "ts", "h": "hex", "b": "bin"}
_WORD_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
_DIGITS = frozenset("0123456789")
_NUMBER_START = frozenset("+-.")
_ORDERABLE = ("int+", "int-", "float+", "float-", "str", "bin", "hex", "ts")
_PRIMITIVE = (*_ORDERABLE, "bool")
_STRING_OPS = frozenset({"LIKE", "MATCHES", "ISSUBSET", "ISSUPERSET"})
_QUALIFIERS = frozenset({"START", "WITHIN", "REPEATS"})
_INDEX_STAR = object()
_HASH_RULES = {name: re.compile(rule[0]) for name, rule in _PATTERN_HASH_RULES.items()}


class _OutsideSubset(Exception):
    """The fast recogniser cannot vouch for this pattern; stix2-patterns must decide."""


def _token_kind(text: str) -> str:
    """Kind of a token that is not in _FIXED_KINDS: a literal, an identifier or a number."""
    first, single = text[0], len(text) == 1
    if first in _WORD_START:
        if not single and text[1] == "'":
            return _LITERAL_PREFIXES[first]
        kind = "idh" if "-" in text else "id"
        if len(_KNOWN_KINDS) < 20_000:  # object types and property names repeat across patterns
            _KNOWN_KINDS[text] = kind
        return kind
    if first == "'" and not single:
        return "str"
    if first in _DIGITS or (first in _NUMBER_START and not single):
        return ("float" if "." in text else "int") + ("-" if first == "-" else "+")
    # A lone quote, sign, '!', '/', comment or non-ASCII character: the lexer rules for those
    # (errors, comments, unicode white space) are left to stix2-patterns.
    raise _OutsideSubset


def _unquote(literal: str) -> str:
    """Unescape a pattern string literal exactly like stix2-patterns' inspector does."""
    return literal[1:-1].replace("\\'", "'").replace("\\\\", "\\")


class _PatternRecogniser:
    """Recursive-descent recogniser for the STIX 2.1 pattern grammar, minus rare corners."""

    def __init__(self, pattern: str) -> None:
        """Tokenise ``pattern``."""
        self.texts = _PATTERN_TOKEN.findall(pattern)
        known = _KNOWN_KINDS.get
        self.kinds = [known(t) or _token_kind(t) for t in self.texts]
        self.kinds.append(None)  # end-of-input sentinels: looking ahead never runs off the lists
        self.texts.append("")
        self.pos = 0

    def take(self, *kinds: str) -> str:
        """Consume one token of one of ``kinds`` and return its text."""
        if self.kinds[self.pos] not in kinds:
            raise _OutsideSubset
        self.pos += 1
        return self.texts[self.pos - 1]

    def pattern(self) -> None:
        """pattern: observationExpressions EOF"""
        self.observations()
        if self.kinds[self.pos] is not None:
            raise _OutsideSubset

    def observations(self) -> None:
        """observationExpressions: observationExpressionOr ('FOLLOWEDBY' observationExpressionOr)*"""
        self.observation_or()
        while self.kinds[self.pos] == "FOLLOWEDBY":
            self.pos += 1
            self.observation_or()

    def observation_or(self) -> None:
        """observationExpressionOr: observationExpressionAnd ('OR' observationExpressionAnd)*"""
        self.observation_and()
        while self.kinds[self.pos] == "OR":
            self.pos += 1
            self.observation_and()

    def observation_and(self) -> None:
        """observationExpressionAnd: observationExpression ('AND' observationExpression)*"""
        self.observation()
        while self.kinds[self.pos] == "AND":
            self.pos += 1
            self.observation()

    def observation(self) -> None:
        """observationExpression: ('[' comparisonExpression ']' | '(' observationExpressions ')') qualifier*"""
        if self.take("[", "(") == "[":
            self.comparison_or()
            self.take("]")
        else:
            self.observations()
            self.take(")")
        seen = set()
        while (kind := self.kinds[self.pos]) in _QUALIFIERS:
            if kind in seen:  # the library's duplicate-qualifier rule has subtleties: let it decide
                raise _OutsideSubset
            seen.add(kind)
            self.qualifier(kind)

    def qualifier(self, kind: str) -> None:
        """START ts STOP ts | WITHIN number SECONDS | REPEATS integer TIMES"""
        self.pos += 1
        if kind == "START":
            self.take("ts")
            self.take("STOP")
            self.take("ts")
        elif kind == "WITHIN":
            self.take("int+", "float+")
            self.take("SECONDS")
        else:
            self.take("int+")
            self.take("TIMES")

    def comparison_or(self) -> None:
        """comparisonExpression: comparisonExpressionAnd ('OR' comparisonExpressionAnd)*"""
        self.comparison_and()
        while self.kinds[self.pos] == "OR":
            self.pos += 1
            self.comparison_and()

    def comparison_and(self) -> None:
        """comparisonExpressionAnd: propTest ('AND' propTest)*"""
        self.comparison()
        while self.kinds[self.pos] == "AND":
            self.pos += 1
            self.comparison()

    def comparison(self) -> None:
        """propTest: objectPath NOT? operator literal | '(' comparisonExpression ')' | EXISTS objectPath"""
        kind = self.kinds[self.pos]
        if kind == "(":
            self.pos += 1
            self.comparison_or()
            self.take(")")
            return
        if kind == "EXISTS":
            self.pos += 1
            self.object_path()
            return
        path = self.object_path()
        if self.kinds[self.pos] == "NOT":
            self.pos += 1
        kind = self.kinds[self.pos]
        self.pos += 1
        if kind == "eq":
            value = self.take(*_PRIMITIVE)
        elif kind == "ord":
            value = self.take(*_ORDERABLE)
        elif kind == "IN":
            value = self.set_literal()
        elif kind in _STRING_OPS:
            value = self.take("str")
        else:
            raise _OutsideSubset
        if "hashes" in path:
            _check_pattern_hash(path, value)

    def set_literal(self) -> str:
        """setLiteral: '(' (primitiveLiteral (',' primitiveLiteral)*)? ')'; returns its text"""
        self.take("(")
        if self.kinds[self.pos] == ")":
            self.pos += 1
            return "()"
        items = [self.take(*_PRIMITIVE)]
        while self.kinds[self.pos] == ",":
            self.pos += 1
            items.append(self.take(*_PRIMITIVE))
        self.take(")")
        return "(" + ",".join(items) + ")"

    def object_path(self) -> list:
        """objectPath: type ':' first ('.' key | '[' index ']')*; returns the path components"""
        kinds, texts, pos = self.kinds, self.texts, self.pos
        # The end sentinel (None) fails every test below, so indexing never runs off the list.
        if kinds[pos] not in ("id", "idh") or kinds[pos + 1] != ":" or kinds[pos + 2] not in ("id", "str"):
            raise _OutsideSubset
        pos += 2
        path: list = [_unquote(texts[pos]) if kinds[pos] == "str" else texts[pos]]
        pos += 1
        while (kind := kinds[pos]) == "." or kind == "[":
            step_kind, step = kinds[pos + 1], texts[pos + 1]
            if kind == "." and step_kind in ("id", "str"):
                path.append(_unquote(step) if step_kind == "str" else step)
                pos += 2
            elif kind == "[" and step_kind in ("int+", "*") and kinds[pos + 2] == "]":
                # Negative list indexes crash the library's inspector: they are left to it.
                path.append(_INDEX_STAR if step == "*" else int(step))
                pos += 3
            else:
                raise _OutsideSubset
        self.pos = pos
        return path


def _check_pattern_hash(path: list, literal: str) -> None:
    """Apply stix2-patterns' hash-value check to a comparison whose path goes through 'hashes'."""
    selector = path[-1]
    if selector is _INDEX_STAR:
        return
    if not isinstance(selector, str):
        raise _OutsideSubset
    rule = _HASH_RULES.get(selector.upper().replace("-", "").replace("'", ""))
    if rule is not None and not rule.match(literal.replace("'", "")):
        raise _OutsideSubset


def _fast_pattern_ok(pattern: str) -> bool:
    """True when the fast recogniser proves the pattern valid; False means 'ask the library'."""
    try:
        _PatternRecogniser(pattern).pattern()
    except (_OutsideSubset, RecursionError):
        return False
    return True


def _library_pattern_check(pattern: str, stix_version: str = "2.1") -> str | None:
    """Validate with stix2-patterns (slow, about 0.4 ms); None if valid, else its first error."""
    from stix2patterns.validator import run_validator  # deferred: the ANTLR runtime is slow to import

    try:
        errors = run_validator(pattern, stix_version=stix_version)
    except Exception as exc:  # the library crashes on a few malformed inputs (e.g. '' or [x:y[-1] = 1])
        return f"pattern cannot be parsed ({type(exc).__name__}: {exc})"
    return errors[0].removeprefix("FAIL: ") if errors else None


def validate_pattern(pattern: str) -> str | None:
    """Return None if ``pattern`` is a valid STIX 2.1 pattern, else the reason."""
    if not isinstance(pattern, str):
        return f"pattern must be a string, not {type(pattern).__name__}"
    if _fast_pattern_ok(pattern):
        return None
    return _library_pattern_check(pattern)


# --------------------------------------------------------------------------------------
# Property checks: each takes a JSON value and returns None or a problem description

Check = Callable[[Any], "str | None"]

_TYPE_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
# RFC 4122 variant; versions 1-5 of RFC 4122 plus 6-8 of RFC 9562, which keeps the same layout.
_ID_RE = re.compile(
    r"([a-z][a-z0-9]*(?:-[a-z0-9]+)*)--"
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-([1-8])[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
)
_CUSTOM_PROPERTY_RE = re.compile(r"[a-z0-9_]{3,250}")
_DICT_KEY_RE = re.compile(r"[a-zA-Z0-9_-]{1,250}")
_HEX_RE = re.compile(r"(?:[0-9a-fA-F]{2})+")
_LANG_RE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_SELECTOR_INDEX_RE = re.compile(r"\[([0-9]+)\]")
_HASH_VALUE_RES = {
    name: re.compile(rule, re.IGNORECASE)
    for name, rule in {
        "MD5": r"[0-9a-f]{32}",
        "SHA1": r"[0-9a-f]{40}",
        "SHA224": r"[0-9a-f]{56}",
        "SHA256": r"[0-9a-f]{64}",
        "SHA384": r"[0-9a-f]{96}",
        "SHA512": r"[0-9a-f]{128}",
        "SHA3224": r"[0-9a-f]{56}",
        "SHA3256": r"[0-9a-f]{64}",
        "SHA3384": r"[0-9a-f]{96}",
        "SHA3512": r"[0-9a-f]{128}",
        "RIPEMD160": r"[0-9a-f]{40}",
        "WHIRLPOOL": r"[0-9a-f]{128}",
        "TLSH": r"(?:T1)?[0-9a-f]{70}",
        "SSDEEP": r"[a-z0-9/+:.]{1,128}",
    }.items()
}

_SDO_TYPES = frozenset(
    "attack-pattern campaign course-of-action grouping identity incident indicator infrastructure "
    "intrusion-set location malware malware-analysis note observed-data opinion report threat-actor "
    "tool vulnerability".split()
)
_SRO_TYPES = frozenset({"relationship", "sighting"})
# The STIX 2.1 cyber-observable types (the only predefined types that may omit spec_version).
SCO_TYPES: frozenset[str] = frozenset(
    "artifact autonomous-system directory domain-name email-addr email-message file ipv4-addr ipv6-addr "
    "mac-addr mutex network-traffic process software url user-account windows-registry-key "
    "x509-certificate".split()
)
_CATEGORY = {
    **dict.fromkeys(_SDO_TYPES, "SDO"),
    **dict.fromkeys(_SRO_TYPES, "SRO"),
    **dict.fromkeys(SCO_TYPES, "SCO"),
}
_EXTENSION_TYPES = frozenset(
    {"new-sdo", "new-sco", "new-sro", "property-extension", "toplevel-property-extension"}
)


def _check_str(value: Any) -> str | None:
    """A JSON string."""
    return None if isinstance(value, str) else "must be a string"


def _check_bool(value: Any) -> str | None:
    """A JSON boolean (not the strings 'true'/'false' that stix2 also takes)."""
    return None if value is True or value is False else "must be a boolean (true or false)"


def _integer(low: int | None = None, high: int | None = None) -> Check:
    """Check an integer (booleans excluded) within optional bounds."""

    def check(value: Any) -> str | None:
        if type(value) is not int:
            return "must be an integer"
        if low is not None and value < low:
            return f"must be at least {low}, got {value}"
        if high is not None and value > high:
            return f"must be at most {high}, got {value}"
        return None

    return check


def _number(low: float, high: float | None = None) -> Check:
    """Check a JSON number within bounds."""

    def check(value: Any) -> str | None:
        if type(value) not in (int, float):
            return "must be a number"
        if value < low:
            return f"must be at least {low}, got {value}"
        if high is not None and value > high:
            return f"must be at most {high}, got {value}"
        return None

    return check


def _check_timestamp(value: Any) -> str | None:
    """A STIX timestamp string."""
    try:
        parse_timestamp(value)
    except ValueError as exc:
        return f"is invalid: {exc}"
    return None


def _check_hex(value: Any) -> str | None:
    """A hex string (STIX 2.1 hex type: an even number of hex digits)."""
    ok = isinstance(value, str) and _HEX_RE.fullmatch(value)
    return None if ok else "must be an even number of hexadecimal characters"


def _check_binary(value: Any) -> str | None:
    """A strictly valid base64 string."""
    if not isinstance(value, str):
        return "must be a base64 string"
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return f"is not valid base64: {value[:40]!r}"
    return None


def _check_lang(value: Any) -> str | None:
    """An RFC 5646 language tag (shape only)."""
    ok = isinstance(value, str) and _LANG_RE.fullmatch(value)
    return None if ok else f"must be an RFC 5646 language tag, got {value!r}"


def _enum(*allowed: str) -> Check:
    """Check a closed vocabulary."""
    values = frozenset(allowed)

    def check(value: Any) -> str | None:
        if isinstance(value, str) and value in values:
            return None
        return f"must be one of {', '.join(allowed)}; got {value!r}"

    return check


def _reference(*types: str, excluded: frozenset[str] = frozenset()) -> Check:
    """Check a STIX identifier, optionally restricted to types or categories (SDO, SCO, SRO)."""
    categories = frozenset(t for t in types if t.isupper())
    specific = frozenset(types) - categories

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a STIX identifier string"
        match = _ID_RE.fullmatch(value)
        if match is None or len(match.group(1)) < 3:
            return f"is not a valid STIX identifier: {value!r}"
        ref_type = match.group(1)
        if ref_type in excluded:
            return f"must not refer to a {ref_type}"
        if categories:
            # Like stix2 with allow_custom: custom and meta types pass, known types of other categories fail.
            category = _CATEGORY.get(ref_type)
            if category is not None and category not in categories and ref_type not in specific:
                return f"must refer to {' or '.join(sorted(types))}, not {ref_type}"
        elif specific and ref_type not in specific:
            return f"must refer to {' or '.join(sorted(types))}, not {ref_type}"
        return None

    return check


def _list_of(item: Check) -> Check:
    """Check a non-empty list whose items all pass ``item``."""

    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be a list"
        if not value:
            return "must not be an empty list"
        for index, element in enumerate(value):
            problem = item(element)
            if problem:
                return f"item {index} {problem}"
        return None

    return check


def _check_dictionary(value: Any) -> str | None:
    """A non-empty STIX dictionary with valid keys."""
    if not isinstance(value, dict):
        return "must be a dictionary"
    if not value:
        return "must not be an empty dictionary"
    for key in value:
        if not _DICT_KEY_RE.fullmatch(key):
            return f"has an invalid key {key!r} (1-250 characters of a-z, A-Z, 0-9, '-', '_')"
    return None


def _check_hashes(value: Any) -> str | None:
    """A hashes dictionary; values of known algorithms must have the algorithm's form."""
    problem = _check_dictionary(value)
    if problem:
        return problem
    for name, digest in value.items():
        if not isinstance(digest, str):
            return f"value of {name!r} must be a string"
        rule = _HASH_VALUE_RES.get(name.replace("-", "").upper())
        if rule is not None and not rule.fullmatch(digest):
            return f"value of {name!r} is not a valid {name} hash: {digest!r}"
    return None


def _object(props: dict[str, Check], required: tuple[str, ...] = (), one_of: tuple[str, ...] = ()) -> Check:
    """Check an embedded object (a JSON object with known properties)."""

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        for name in required:
            if name not in value:
                return f"needs property '{name}'"
        for name, element in value.items():
            prop_check = props.get(name)
            problem = prop_check(element) if prop_check is not None else None
            if problem:
                return f"property '{name}' {problem}"
        if one_of and not any(name in value for name in one_of):
            return f"needs at least one of {', '.join(one_of)}"
        return None

    return check


_STR = _check_str
_BOOL = _check_bool
_INT = _integer()
_UINT = _integer(0)
_TIMESTAMP = _check_timestamp
_STR_LIST = _list_of(_check_str)
_HASHES = _check_hashes
_DICT = _check_dictionary
_MARKING_REF = _reference("marking-definition")
_ANY_REFERENCE = _reference()
_ANY_REFERENCES = _list_of(_ANY_REFERENCE)
_EXTERNAL_REFERENCES = _list_of(
    _object(
        {"source_name": _STR, "description": _STR, "url": _STR, "external_id": _STR, "hashes": _HASHES},
        required=("source_name",),
        one_of=("description", "url", "external_id"),
    )
)
_KILL_CHAIN_PHASES = _list_of(
    _object({"kill_chain_name": _STR, "phase_name": _STR}, required=("kill_chain_name", "phase_name"))
)


def _check_granular_marking(value: Any) -> str | None:
    """One granular marking: selectors plus exactly one of marking_ref and lang."""
    if not isinstance(value, dict):
        return "must be an object"
    if "selectors" not in value:
        return "needs property 'selectors'"
    problem = _STR_LIST(value["selectors"])
    if problem:
        return f"property 'selectors' {problem}"
    if ("marking_ref" in value) == ("lang" in value):
        return "must have exactly one of 'marking_ref' and 'lang'"
    if "marking_ref" in value:
        problem = _MARKING_REF(value["marking_ref"])
        return f"property 'marking_ref' {problem}" if problem else None
    problem = _check_lang(value["lang"])
    return f"property 'lang' {problem}" if problem else None


_GRANULAR_MARKINGS = _list_of(_check_granular_marking)
_MARKING_REFS = _list_of(_MARKING_REF)


# --------------------------------------------------------------------------------------
# Cyber-observable extensions predefined by STIX 2.1 §6, keyed by name, with their SCO type


def _check_socket_options(value: Any) -> str | None:
    """socket-ext options: SO_*/IP_*/... keys with integer values."""
    problem = _check_dictionary(value)
    if problem:
        return problem
    prefixes = ("SO_", "ICMP_", "ICMP6_", "IP_", "IPV6_", "MCAST_", "TCP_", "IRLMP_")
    for key, option in value.items():
        if not key.startswith(prefixes):
            return f"key {key!r} must start with one of {', '.join(prefixes)}"
        if type(option) is not int:
            return f"value of {key!r} must be an integer"
    return None


def _pe_optional_header() -> Check:
    """Check the windows-pebinary-ext optional header: *_hex fields, hashes, the rest integers."""
    names = (
        "magic_hex major_linker_version minor_linker_version size_of_code size_of_initialized_data "
        "size_of_uninitialized_data address_of_entry_point base_of_code base_of_data image_base "
        "section_alignment file_alignment major_os_version minor_os_version major_image_version "
        "minor_image_version major_subsystem_version minor_subsystem_version win32_version_value_hex "
        "size_of_image size_of_headers checksum_hex subsystem_hex dll_characteristics_hex "
        "size_of_stack_reserve size_of_stack_commit size_of_heap_reserve size_of_heap_commit "
        "loader_flags_hex number_of_rva_and_sizes hashes"
    ).split()
    props = {n: _HASHES if n == "hashes" else _check_hex if n.endswith("_hex") else _INT for n in names}
    return _object(props, one_of=tuple(names))


_SCO_EXTENSIONS: dict[str, tuple[str, Check]] = {
    name: (sco_type, _object(props, required, one_of=tuple(props)))
    for name, sco_type, props, required in (
        ("archive-ext", "file", {"contains_refs": _list_of(_reference("file", "directory")), "comment": _STR},
         ("contains_refs",)),
        ("ntfs-ext", "file", {"sid": _STR, "alternate_data_streams": _list_of(
            _object({"name": _STR, "hashes": _HASHES, "size": _UINT}, required=("name",)))}, ()),
        ("pdf-ext", "file", {"version": _STR, "is_optimized": _BOOL, "document_info_dict": _DICT,
                             "pdfid0": _STR, "pdfid1": _STR}, ()),
        ("raster-image-ext", "file", {"image_height": _INT, "image_width": _INT, "bits_per_pixel": _INT,
                                      "exif_tags": _DICT}, ()),
        ("windows-pebinary-ext", "file", {
            "pe_type": _STR, "imphash": _STR, "machine_hex": _check_hex, "number_of_sections": _UINT,
            "time_date_stamp": _TIMESTAMP, "pointer_to_symbol_table_hex": _check_hex,
            "number_of_symbols": _UINT, "size_of_optional_header": _UINT, "characteristics_hex": _check_hex,
            "file_header_hashes": _HASHES, "optional_header": _pe_optional_header(),
            "sections": _list_of(_object({"name": _STR, "size": _UINT, "entropy": _number(float("-inf")),
                                          "hashes": _HASHES}, required=("name",)))}, ("pe_type",)),
        ("http-request-ext", "network-traffic", {
            "request_method": _STR, "request_value": _STR, "request_version": _STR, "request_header": _DICT,
            "message_body_length": _INT, "message_body_data_ref": _reference("artifact")},
         ("request_method", "request_value")),
        ("icmp-ext", "network-traffic", {"icmp_type_hex": _check_hex, "icmp_code_hex": _check_hex},
         ("icmp_type_hex", "icmp_code_hex")),
        ("socket-ext", "network-traffic", {
            "address_family": _enum("AF_UNSPEC", "AF_INET", "AF_IPX", "AF_APPLETALK", "AF_NETBIOS",
                                    "AF_INET6", "AF_IRDA", "AF_BTH"),
            "is_blocking": _BOOL, "is_listening": _BOOL, "options": _check_socket_options,
            "socket_type": _enum("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET"),
            "socket_descriptor": _UINT, "socket_handle": _INT}, ("address_family",)),
        ("tcp-ext", "network-traffic", {"src_flags_hex": _check_hex, "dst_flags_hex": _check_hex}, ()),
        ("windows-process-ext", "process", {
            "aslr_enabled": _BOOL, "dep_enabled": _BOOL, "priority": _STR, "owner_sid": _STR,
            "window_title": _STR, "startup_info": _DICT,
            "integrity_level": _enum("low", "medium", "high", "system")}, ()),
        ("windows-service-ext", "process", {
            "service_name": _STR, "descriptions": _STR_LIST, "display_name": _STR, "group_name": _STR,
            "start_type": _enum("SERVICE_AUTO_START", "SERVICE_BOOT_START", "SERVICE_DEMAND_START",
                                "SERVICE_DISABLED", "SERVICE_SYSTEM_ALERT"),
            "service_dll_refs": _list_of(_reference("file")),
            "service_type": _enum("SERVICE_KERNEL_DRIVER", "SERVICE_FILE_SYSTEM_DRIVER",
                                  "SERVICE_WIN32_OWN_PROCESS", "SERVICE_WIN32_SHARE_PROCESS"),
            "service_status": _enum("SERVICE_CONTINUE_PENDING", "SERVICE_PAUSE_PENDING", "SERVICE_PAUSED",
                                    "SERVICE_RUNNING", "SERVICE_START_PENDING", "SERVICE_STOP_PENDING",
                                    "SERVICE_STOPPED")}, ()),
        ("unix-account-ext", "user-account", {"gid": _INT, "groups": _STR_LIST, "home_dir": _STR,
                                              "shell": _STR}, ()),
    )
}  # fmt: skip


def _extensions(object_type: str | None) -> Check:
    """Check an 'extensions' dictionary: extension-definition ids, or the predefined SCO extensions."""
    predefined = {name: check for name, (sco, check) in _SCO_EXTENSIONS.items() if sco == object_type}

    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be a dictionary"
        if not value:
            return "must not be an empty dictionary"
        for key, extension in value.items():
            if key.startswith("extension-definition--"):
                match = _ID_RE.fullmatch(key)
                if match is None or match.group(1) != "extension-definition":
                    return f"key {key!r} is not a valid extension-definition id"
                if not isinstance(extension, dict):
                    return f"entry {key!r} must be an object"
                kind = extension.get("extension_type")
                if kind is not None and not (isinstance(kind, str) and kind in _EXTENSION_TYPES):
                    return f"entry {key!r} has an unknown extension_type {kind!r}"
                continue
            extension_check = predefined.get(key)
            if extension_check is None:
                return f"key {key!r} is neither an extension-definition id nor an extension of {object_type}"
            problem = extension_check(extension)
            if problem:
                return f"entry {key!r}: {problem}"
        return None

    return check


# --------------------------------------------------------------------------------------
# Object-level rules: each takes the object and returns None or a complete problem description

Rule = Callable[[dict], "str | None"]


def _instant(obj: dict, name: str) -> int | None:
    """Microseconds of a timestamp property, or None when absent or invalid (reported elsewhere)."""
    value = obj.get(name)
    if not isinstance(value, str):
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _not_before(later: str, earlier: str, strict: bool = False) -> Rule:
    """Require ``later`` >= ``earlier`` (``>`` when strict) when both are present."""

    def rule(obj: dict) -> str | None:
        if later not in obj or earlier not in obj:
            return None
        late, early = _instant(obj, later), _instant(obj, earlier)
        if late is None or early is None or late > early or (late == early and not strict):
            return None
        relation = "is not later than" if strict else "is earlier than"
        return f"property '{later}' ({obj[later]}) {relation} '{earlier}' ({obj[earlier]})"

    return rule


def _at_least_one(*names: str) -> Rule:
    """Require at least one of ``names``."""

    def rule(obj: dict) -> str | None:
        if any(n in obj for n in names):
            return None
        return f"needs at least one of the properties {', '.join(names)}"

    return rule


def _exactly_one(first: str, second: str) -> Rule:
    """Require exactly one of two properties."""

    def rule(obj: dict) -> str | None:
        if (first in obj) != (second in obj):
            return None
        return f"needs exactly one of the properties '{first}' and '{second}'"

    return rule


def _malware_rule(obj: dict) -> str | None:
    """A malware family needs a name."""
    if obj.get("is_family") is True and "name" not in obj:
        return "property 'name' is required when 'is_family' is true"
    return None


def _location_rule(obj: dict) -> str | None:
    """A location needs a region, a country or coordinates; coordinates come in pairs."""
    if ("latitude" in obj) != ("longitude" in obj):
        return "properties 'latitude' and 'longitude' must be used together"
    if "precision" in obj and "latitude" not in obj:
        return "property 'precision' needs 'latitude' and 'longitude'"
    if not ("region" in obj or "country" in obj or "latitude" in obj):
        return "needs property 'region', 'country', or 'latitude' and 'longitude'"
    return None


def _indicator_pattern_rule(obj: dict) -> str | None:
    """A STIX-language indicator pattern must be a valid pattern."""
    pattern = obj.get("pattern")
    if obj.get("pattern_type") != "stix" or not isinstance(pattern, str):
        return None
    version = obj.get("pattern_version", "2.1")
    # Like the stix2 library: a pattern_version other than 2.1 selects the 2.0 pattern grammar.
    reason = validate_pattern(pattern) if version == "2.1" else _library_pattern_check(pattern, "2.0")
    return f"property 'pattern' is not a valid STIX pattern: {reason}" if reason else None


def _artifact_rule(obj: dict) -> str | None:
    """An artifact has its payload inline or by URL (then with hashes), not both."""
    if ("payload_bin" in obj) == ("url" in obj):
        return "needs exactly one of the properties 'payload_bin' and 'url'"
    if "url" in obj and "hashes" not in obj:
        return "property 'hashes' is required when 'url' is present"
    return None


def _email_message_rule(obj: dict) -> str | None:
    """Multipart bodies only on multipart messages, a plain body only on the others."""
    if "body_multipart" in obj and obj.get("is_multipart") is not True:
        return "property 'body_multipart' needs 'is_multipart' true"
    if "body" in obj and obj.get("is_multipart") is True:
        return "property 'body' must not be used when 'is_multipart' is true"
    return None


def _network_traffic_rule(obj: dict) -> str | None:
    """Ended traffic cannot be active."""
    if "end" in obj and obj.get("is_active") is True:
        return "property 'is_active' must be false when 'end' is present"
    return None


_PROCESS_OWN = (
    "is_hidden pid created_time cwd command_line environment_variables opened_connection_refs "
    "creator_user_ref image_ref parent_ref child_refs object_marking_refs granular_markings extensions"
).split()
_X509_OWN = (
    "is_self_signed hashes version serial_number signature_algorithm issuer validity_not_before "
    "validity_not_after subject subject_public_key_algorithm subject_public_key_modulus "
    "subject_public_key_exponent x509_v3_extensions"
).split()


def _same_marking(obj: dict, builtin: dict) -> list[str]:
    """Names of the properties in which ``obj`` differs from a built-in marking definition."""
    differing = []
    for name in sorted(obj.keys() | builtin.keys()):
        if name == "created":
            if _instant(obj, name) != _instant(builtin, name):
                differing.append(name)
        elif obj.get(name) != builtin.get(name):
            differing.append(name)
    return differing


def _tlp_marking_rule(obj: dict) -> str | None:
    """STIX 2.1 §7.2.1.4: the four built-in TLP marking definitions are the only TLP ones, unchanged."""
    marking_id = obj.get("id")
    if not isinstance(marking_id, str):
        return None  # reported by the 'id' check
    builtin = TLP1_MARKINGS.get(marking_id)
    if builtin is not None:
        differing = _same_marking(obj, builtin)
        if differing:
            names = ", ".join(f"'{n}'" for n in differing)
            noun = "property" if len(differing) == 1 else "properties"
            return (f"{noun} {names} of a built-in TLP id differ from the STIX 2.1 {builtin['name']} "
                    "marking: TLP marking definitions must be used unchanged (STIX 2.1 §7.2.1.4)")
        return None
    if obj.get("definition_type") == "tlp":
        return ("property 'definition_type' is 'tlp' but the id is not one of the four STIX 2.1 TLP "
                "marking definitions (STIX 2.1 §7.2.1.4)")
    tlp2 = _TLP2_BY_ID.get(marking_id)
    if tlp2 is not None and (obj.get("name") != tlp2["name"] or obj.get("extensions") != tlp2["extensions"]):
        # The hub maps markings to levels by id, so an id must not claim a different colour.
        return f"property 'extensions' or 'name' contradicts the TLP 2.0 id {marking_id} ({tlp2['name']})"
    return None


def _marking_definition_rule(obj: dict) -> str | None:
    """A marking has a tlp/statement definition or extensions, and obeys the TLP rule."""
    kind, definition = obj.get("definition_type"), obj.get("definition")
    if "extensions" not in obj and not (kind and definition):
        return "needs properties 'definition_type' and 'definition', or 'extensions'"
    if ("definition_type" in obj) != ("definition" in obj):
        return "properties 'definition_type' and 'definition' must be used together"
    if "definition_type" in obj:
        if kind not in ("tlp", "statement"):
            return f"property 'definition_type' must be 'tlp' or 'statement', got {kind!r}"
        well_formed = isinstance(definition, dict) and definition.keys() == {kind}
        if not (well_formed and isinstance(definition[kind], str)):
            return f"property 'definition' must be an object with a single string property '{kind}'"
    return _tlp_marking_rule(obj)


def _selector_resolves(obj: dict, selector: str) -> bool:
    """Tell whether a granular-marking selector points at content present in ``obj``."""
    node: Any = obj
    for step in selector.split("."):
        if isinstance(node, dict):
            if step not in node:
                return False
            node = node[step]
        elif isinstance(node, list):
            index = _SELECTOR_INDEX_RE.fullmatch(step)
            if index is None or int(index.group(1)) >= len(node):
                return False
            node = node[int(index.group(1))]
        else:
            return False
    return True


def _granular_selectors_rule(obj: dict) -> str | None:
    """Every granular-marking selector must point at content of the object."""
    markings = obj.get("granular_markings")
    if not isinstance(markings, list):
        return None
    for marking in markings:
        selectors = marking.get("selectors") if isinstance(marking, dict) else None
        for selector in selectors if isinstance(selectors, list) else ():
            if isinstance(selector, str) and not _selector_resolves(obj, selector):
                return f"property 'granular_markings' selector {selector!r} does not match any content"
    return None


# --------------------------------------------------------------------------------------
# Per-type specifications


class _Spec(NamedTuple):
    """What validate() needs to know about one object type."""

    kind: str  # "sdo", "sro", "sco", "marking", "meta" (language-content, extension-definition), "custom"
    props: dict[str, Check | None]  # None: checked before the property loop
    required: tuple[str, ...]
    rules: tuple[Rule, ...]


_HEADER = {"type": None, "id": None, "spec_version": None}
_SDO_COMMON: dict[str, Check | None] = {
    **_HEADER,
    "created_by_ref": _reference("identity"),
    "created": _TIMESTAMP,
    "modified": _TIMESTAMP,
    "revoked": _BOOL,
    "labels": _STR_LIST,
    "confidence": _integer(0, 100),
    "lang": _check_lang,
    "external_references": _EXTERNAL_REFERENCES,
    "object_marking_refs": _MARKING_REFS,
    "granular_markings": _GRANULAR_MARKINGS,
    "extensions": _extensions(None),
}
_SDO_REQUIRED = ("type", "spec_version", "id", "created", "modified")
_VERSIONED = (_not_before("modified", "created"),)
_SEEN = _not_before("last_seen", "first_seen")
_ANY_OBJECT_REFS = _list_of(_reference("SCO", "SDO", "SRO"))
_RELATIONSHIP_ENDS = frozenset(
    {"bundle", "language-content", "marking-definition", "relationship", "sighting"}
)


def _sdo(kind: str, props: dict[str, Check], required: tuple[str, ...] = (), *rules: Rule) -> _Spec:
    """Spec of an SDO or SRO: the common properties plus the type's own."""
    return _Spec(kind, {**_SDO_COMMON, **props}, _SDO_REQUIRED + required, _VERSIONED + rules)


def _sco(sco_type: str, props: dict[str, Check], required: tuple[str, ...] = (), *rules: Rule) -> _Spec:
    """Spec of a cyber-observable: the SCO common properties plus the type's own."""
    common = {
        **_HEADER,
        "object_marking_refs": _MARKING_REFS,
        "granular_markings": _GRANULAR_MARKINGS,
        "defanged": _BOOL,
        "extensions": _extensions(sco_type),
    }
    return _Spec("sco", {**common, **props}, ("type", "id") + required, rules)


_ADDRESS_REFS = {
    "value": _STR,
    "resolves_to_refs": _list_of(_reference("mac-addr")),
    "belongs_to_refs": _list_of(_reference("autonomous-system")),
}
_TRAFFIC_ENDPOINT = _reference("ipv4-addr", "ipv6-addr", "mac-addr", "domain-name")

_SPECS: dict[str, _Spec] = {
    "attack-pattern": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                                   "kill_chain_phases": _KILL_CHAIN_PHASES}, ("name",)),
    "campaign": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                             "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP, "objective": _STR},
                     ("name",), _SEEN),
    "course-of-action": _sdo("sdo", {"name": _STR, "description": _STR}, ("name",)),
    "grouping": _sdo("sdo", {"name": _STR, "description": _STR, "context": _STR,
                             "object_refs": _ANY_OBJECT_REFS}, ("context", "object_refs")),
    "identity": _sdo("sdo", {"name": _STR, "description": _STR, "roles": _STR_LIST, "identity_class": _STR,
                             "sectors": _STR_LIST, "contact_information": _STR}, ("name",)),
    "incident": _sdo("sdo", {"name": _STR, "description": _STR, "kill_chain_phases": _KILL_CHAIN_PHASES},
                     ("name",)),
    "indicator": _sdo("sdo", {"name": _STR, "description": _STR, "indicator_types": _STR_LIST,
                              "pattern": _STR, "pattern_type": _STR, "pattern_version": _STR,
                              "valid_from": _TIMESTAMP, "valid_until": _TIMESTAMP,
                              "kill_chain_phases": _KILL_CHAIN_PHASES},
                      ("pattern", "pattern_type", "valid_from"),
                      _not_before("valid_until", "valid_from", strict=True), _indicator_pattern_rule),
    "infrastructure": _sdo("sdo", {"name": _STR, "description": _STR, "infrastructure_types": _STR_LIST,
                                   "aliases": _STR_LIST, "kill_chain_phases": _KILL_CHAIN_PHASES,
                                   "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP}, ("name",), _SEEN),
    "intrusion-set": _sdo("sdo", {"name": _STR, "description": _STR, "aliases": _STR_LIST,
                                  "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP, "goals": _STR_LIST,
                                  "resource_level": _STR, "primary_motivation": _STR,
                                  "secondary_motivations": _STR_LIST}, ("name",), _SEEN),
    "location": _sdo("sdo", {"name": _STR, "description": _STR, "latitude": _number(-90, 90),
                             "longitude": _number(-180, 180), "precision": _number(0), "region": _STR,
                             "country": _STR, "administrative_area": _STR, "city": _STR,
                             "street_address": _STR, "postal_code": _STR}, (), _location_rule),
    "malware": _sdo("sdo", {"name": _STR, "description": _STR, "malware_types": _STR_LIST, "is_family": _BOOL,
                            "aliases": _STR_LIST, "kill_chain_phases": _KILL_CHAIN_PHASES,
                            "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                            "operating_system_refs": _list_of(_reference("software")),
                            "architecture_execution_envs": _STR_LIST, "implementation_languages": _STR_LIST,
                            "capabilities": _STR_LIST,
                            "sample_refs": _list_of(_reference("artifact", "file"))},
                    ("is_family",), _SEEN, _malware_rule),
    "malware-analysis": _sdo("sdo", {
        "product": _STR, "version": _STR, "host_vm_ref": _reference("software"),
        "operating_system_ref": _reference("software"),
        "installed_software_refs": _list_of(_reference("software")),
        "configuration_version": _STR, "modules": _STR_LIST, "analysis_engine_version": _STR,
        "analysis_definition_version": _STR, "submitted": _TIMESTAMP, "analysis_started": _TIMESTAMP,
        "analysis_ended": _TIMESTAMP, "result_name": _STR, "result": _STR,
        "analysis_sco_refs": _list_of(_reference("SCO")), "sample_ref": _reference("SCO")},
        ("product",), _at_least_one("result", "analysis_sco_refs")),
    "note": _sdo("sdo", {"abstract": _STR, "content": _STR, "authors": _STR_LIST,
                         "object_refs": _ANY_OBJECT_REFS}, ("content", "object_refs")),
    "observed-data": _sdo("sdo", {"first_observed": _TIMESTAMP, "last_observed": _TIMESTAMP,
                                  "number_observed": _integer(1, 999_999_999),
                                  "objects": _DICT, "object_refs": _list_of(_reference("SCO", "SRO"))},
                          ("first_observed", "last_observed", "number_observed"),
                          _not_before("last_observed", "first_observed"),
                          _exactly_one("objects", "object_refs")),
    "opinion": _sdo("sdo", {"explanation": _STR, "authors": _STR_LIST,
                            "opinion": _enum("strongly-disagree", "disagree", "neutral", "agree",
                                             "strongly-agree"),
                            "object_refs": _ANY_OBJECT_REFS}, ("opinion", "object_refs")),
    "report": _sdo("sdo", {"name": _STR, "description": _STR, "report_types": _STR_LIST,
                           "published": _TIMESTAMP, "object_refs": _ANY_OBJECT_REFS},
                   ("name", "published", "object_refs")),
    "threat-actor": _sdo("sdo", {"name": _STR, "description": _STR, "threat_actor_types": _STR_LIST,
                                 "aliases": _STR_LIST, "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                                 "roles": _STR_LIST, "goals": _STR_LIST, "sophistication": _STR,
                                 "resource_level": _STR, "primary_motivation": _STR,
                                 "secondary_motivations": _STR_LIST, "personal_motivations": _STR_LIST},
                         ("name",), _SEEN),
    "tool": _sdo("sdo", {"name": _STR, "description": _STR, "tool_types": _STR_LIST, "aliases": _STR_LIST,
                         "kill_chain_phases": _KILL_CHAIN_PHASES, "tool_version": _STR}, ("name",)),
    "vulnerability": _sdo("sdo", {"name": _STR, "description": _STR}, ("name",)),
    "relationship": _sdo("sro", {"relationship_type": _STR, "description": _STR,
                                 "source_ref": _reference(excluded=_RELATIONSHIP_ENDS),
                                 "target_ref": _reference(excluded=_RELATIONSHIP_ENDS),
                                 "start_time": _TIMESTAMP, "stop_time": _TIMESTAMP},
                         ("relationship_type", "source_ref", "target_ref"),
                         _not_before("stop_time", "start_time", strict=True)),
    "sighting": _sdo("sro", {"description": _STR, "first_seen": _TIMESTAMP, "last_seen": _TIMESTAMP,
                             "count": _integer(0, 999_999_999), "sighting_of_ref": _reference("SDO"),
                             "observed_data_refs": _list_of(_reference("observed-data")),
                             "where_sighted_refs": _list_of(_reference("identity", "location")),
                             "summary": _BOOL}, ("sighting_of_ref",), _SEEN),
    "marking-definition": _Spec("marking", {
        **_HEADER, "created_by_ref": _reference("identity"), "created": _TIMESTAMP, "definition_type": _STR,
        "name": _STR, "definition": None, "external_references": _EXTERNAL_REFERENCES,
        "object_marking_refs": _MARKING_REFS, "granular_markings": _GRANULAR_MARKINGS,
        "extensions": _extensions(None)},
        ("type", "spec_version", "id", "created"), (_marking_definition_rule,)),
    "language-content": _sdo("meta", {
        "object_ref": _reference("SCO", "SDO", "SRO"), "object_modified": _TIMESTAMP,
        "contents": _DICT}, ("object_ref", "contents")),
    "extension-definition": _sdo("meta", {
        "created_by_ref": _reference("identity"), "name": _STR, "description": _STR, "schema": _STR,
        "version": _STR, "extension_types": _list_of(_enum(*sorted(_EXTENSION_TYPES))),
        "extension_properties": _STR_LIST},
        ("created_by_ref", "name", "schema", "version", "extension_types")),
    "artifact": _sco("artifact", {"mime_type": _STR, "payload_bin": _check_binary, "url": _STR,
                                  "hashes": _HASHES,
                                  "encryption_algorithm": _enum("AES-256-GCM", "ChaCha20-Poly1305",
                                                                "mime-type-indicated"),
                                  "decryption_key": _STR}, (), _artifact_rule),
    "autonomous-system": _sco("autonomous-system", {"number": _INT, "name": _STR, "rir": _STR}, ("number",)),
    "directory": _sco("directory", {"path": _STR, "path_enc": _STR, "ctime": _TIMESTAMP, "mtime": _TIMESTAMP,
                                    "atime": _TIMESTAMP,
                                    "contains_refs": _list_of(_reference("file", "directory"))},
                      ("path",)),
    "domain-name": _sco("domain-name", {"value": _STR, "resolves_to_refs": _list_of(
        _reference("ipv4-addr", "ipv6-addr", "domain-name"))}, ("value",)),
    "email-addr": _sco("email-addr", {"value": _STR, "display_name": _STR,
                                      "belongs_to_ref": _reference("user-account")}, ("value",)),
    "email-message": _sco("email-message", {
        "is_multipart": _BOOL, "date": _TIMESTAMP, "content_type": _STR, "from_ref": _reference("email-addr"),
        "sender_ref": _reference("email-addr"), "to_refs": _list_of(_reference("email-addr")),
        "cc_refs": _list_of(_reference("email-addr")), "bcc_refs": _list_of(_reference("email-addr")),
        "message_id": _STR, "subject": _STR, "received_lines": _STR_LIST, "additional_header_fields": _DICT,
        "body": _STR, "raw_email_ref": _reference("artifact"),
        "body_multipart": _list_of(_object({"body": _STR, "body_raw_ref": _reference("artifact", "file"),
                                            "content_type": _STR, "content_disposition": _STR},
                                           one_of=("body", "body_raw_ref")))},
        ("is_multipart",), _email_message_rule),
    "file": _sco("file", {"hashes": _HASHES, "size": _UINT, "name": _STR, "name_enc": _STR,
                          "magic_number_hex": _check_hex, "mime_type": _STR, "ctime": _TIMESTAMP,
                          "mtime": _TIMESTAMP, "atime": _TIMESTAMP,
                          "parent_directory_ref": _reference("directory"),
                          "contains_refs": _list_of(_reference("SCO")),
                          "content_ref": _reference("artifact")},
                 (), _at_least_one("hashes", "name")),
    "ipv4-addr": _sco("ipv4-addr", _ADDRESS_REFS, ("value",)),
    "ipv6-addr": _sco("ipv6-addr", _ADDRESS_REFS, ("value",)),
    "mac-addr": _sco("mac-addr", {"value": _STR}, ("value",)),
    "mutex": _sco("mutex", {"name": _STR}, ("name",)),
    "network-traffic": _sco("network-traffic", {
        "start": _TIMESTAMP, "end": _TIMESTAMP, "is_active": _BOOL, "src_ref": _TRAFFIC_ENDPOINT,
        "dst_ref": _TRAFFIC_ENDPOINT, "src_port": _integer(0, 65535), "dst_port": _integer(0, 65535),
        "protocols": _STR_LIST, "src_byte_count": _UINT, "dst_byte_count": _UINT, "src_packets": _UINT,
        "dst_packets": _UINT, "ipfix": _DICT, "src_payload_ref": _reference("artifact"),
        "dst_payload_ref": _reference("artifact"),
        "encapsulates_refs": _list_of(_reference("network-traffic")),
        "encapsulated_by_ref": _reference("network-traffic")},
        ("protocols",),
        _at_least_one("src_ref", "dst_ref"), _not_before("end", "start"), _network_traffic_rule),
    "process": _sco("process", {
        "is_hidden": _BOOL, "pid": _INT, "created_time": _TIMESTAMP, "cwd": _STR, "command_line": _STR,
        "environment_variables": _DICT, "opened_connection_refs": _list_of(_reference("network-traffic")),
        "creator_user_ref": _reference("user-account"), "image_ref": _reference("file"),
        "parent_ref": _reference("process"), "child_refs": _list_of(_reference("process"))},
        (), _at_least_one(*_PROCESS_OWN)),
    "software": _sco("software", {"name": _STR, "cpe": _STR, "swid": _STR, "languages": _STR_LIST,
                                  "vendor": _STR, "version": _STR}, ("name",)),
    "url": _sco("url", {"value": _STR}, ("value",)),
    "user-account": _sco("user-account", {
        "user_id": _STR, "credential": _STR, "account_login": _STR, "account_type": _STR,
        "display_name": _STR, "is_service_account": _BOOL, "is_privileged": _BOOL,
        "can_escalate_privs": _BOOL, "is_disabled": _BOOL,
        "account_created": _TIMESTAMP, "account_expires": _TIMESTAMP, "credential_last_changed": _TIMESTAMP,
        "account_first_login": _TIMESTAMP, "account_last_login": _TIMESTAMP}),
    "windows-registry-key": _sco("windows-registry-key", {
        "key": _STR, "modified_time": _TIMESTAMP, "creator_user_ref": _reference("user-account"),
        "number_of_subkeys": _INT,
        "values": _list_of(_object({"name": _STR, "data": _STR, "data_type": _enum(
            "REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD", "REG_DWORD_BIG_ENDIAN",
            "REG_DWORD_LITTLE_ENDIAN", "REG_LINK", "REG_MULTI_SZ", "REG_RESOURCE_LIST",
            "REG_FULL_RESOURCE_DESCRIPTION", "REG_RESOURCE_REQUIREMENTS_LIST", "REG_QWORD",
            "REG_INVALID_TYPE")}))}),
    "x509-certificate": _sco("x509-certificate", {
        "is_self_signed": _BOOL, "hashes": _HASHES, "version": _STR, "serial_number": _STR,
        "signature_algorithm": _STR, "issuer": _STR, "validity_not_before": _TIMESTAMP,
        "validity_not_after": _TIMESTAMP, "subject": _STR, "subject_public_key_algorithm": _STR,
        "subject_public_key_modulus": _STR, "subject_public_key_exponent": _INT,
        "x509_v3_extensions": _object({
            **{name: _STR for name in (
                "basic_constraints name_constraints policy_constraints key_usage extended_key_usage "
                "subject_key_identifier authority_key_identifier subject_alternative_name "
                "issuer_alternative_name subject_directory_attributes crl_distribution_points "
                "inhibit_any_policy certificate_policies policy_mappings").split()},
            "private_key_usage_period_not_before": _TIMESTAMP,
            "private_key_usage_period_not_after": _TIMESTAMP})},
        (), _at_least_one(*_X509_OWN)),
}  # fmt: skip

# Objects of an unregistered (custom) type: the shared properties keep their STIX meaning.
_CUSTOM_SPEC = _Spec(
    "custom", {**_SDO_COMMON, "defanged": _BOOL}, ("type", "id"), _VERSIONED
)


# --------------------------------------------------------------------------------------
# validate()


def _is_type_name(text: str) -> bool:
    """STIX 2.1 type names: 3-250 characters of a-z, 0-9 and single inner hyphens, starting with a letter."""
    return 3 <= len(text) <= 250 and _TYPE_RE.fullmatch(text) is not None


def _check_header(obj: dict, object_type: str, spec: _Spec) -> list[str]:
    """Check 'id' and 'spec_version' (problems without the object label)."""
    problems = []
    object_id = obj.get("id")
    if isinstance(object_id, str):
        match = _ID_RE.fullmatch(object_id)
        if match is None:
            problems.append(f"property 'id' is not a valid STIX identifier <type>--<UUID>: {object_id!r}")
        elif match.group(1) != object_type:
            problems.append(f"property 'id' must start with '{object_type}--'")
        elif spec.kind == "sco" and match.group(2) not in ("4", "5"):
            problems.append("property 'id' of a cyber-observable must use a version 4 or 5 UUID")
    elif object_id is not None:
        problems.append("property 'id' must be a string")
    if "spec_version" in obj and obj["spec_version"] != "2.1":
        problems.append(f"property 'spec_version' must be '2.1', got {obj['spec_version']!r}")
    return problems


def _bad_custom_name(value: Any) -> str:
    """The problem of a custom property whose name breaks the naming rule, whatever its value."""
    return "is not a valid custom property name (3-250 characters of a-z, 0-9 and '_')"


@functools.lru_cache(maxsize=4096)
def _custom_property_check(name: str) -> Check | None:
    """How to check a property the type does not define (custom, or from a toplevel property extension)."""
    # Cached per name: custom names (x_mitre_*, x_opencti_*, ...) repeat on every object of a feed.
    if not _CUSTOM_PROPERTY_RE.fullmatch(name):
        return _bad_custom_name
    if name.endswith("_ref"):
        return _ANY_REFERENCE
    if name.endswith("_refs"):
        return _ANY_REFERENCES
    return None


_UNDEFINED = object()


def _check_properties(obj: dict, props: dict[str, Check | None]) -> list[str]:
    """Check every property value of ``obj`` (problems without the object label)."""
    problems = []
    for name, value in obj.items():
        check = props.get(name, _UNDEFINED)
        if check is _UNDEFINED:
            check = _custom_property_check(name)
        if check is None:
            continue
        problem = "must not be null" if value is None else check(value)
        if problem:
            problems.append(f"property '{name}' {problem}")
    return problems


def validate(obj: dict) -> list[str]:
    """Validate one STIX 2.1 object; return [] when valid, else reasons that name the property."""
    if not isinstance(obj, dict):
        return [f"a STIX object must be a JSON object, not {type(obj).__name__}"]
    object_type = obj.get("type")
    object_id = obj.get("id")
    label = object_id if isinstance(object_id, str) else str(object_type or "object")
    if object_type is None:
        return [f"{label}: property 'type' is required"]
    if not (isinstance(object_type, str) and _is_type_name(object_type)):
        return [f"{label}: property 'type' is not a valid STIX type name "
                f"(3-250 characters of a-z, 0-9 and single hyphens, starting with a letter): {object_type!r}"]
    if object_type == "bundle":
        return [f"{label}: a bundle is an envelope, not a STIX object: validate its objects one by one"]
    spec = _SPECS.get(object_type, _CUSTOM_SPEC)
    problems = [f"property '{name}' is required" for name in spec.required if obj.get(name) is None]
    problems += _check_header(obj, object_type, spec)
    problems += _check_properties(obj, spec.props)
    for rule in spec.rules:
        problem = rule(obj)
        if problem:
            problems.append(problem)
    if "granular_markings" in obj:
        problem = _granular_selectors_rule(obj)
        if problem:
            problems.append(problem)
    return [f"{label}: {p}" for p in problems]
