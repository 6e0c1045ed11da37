"""Fuzzing with hypothesis: the STIX validator, the pattern checker and the ``next`` decoder never crash.

Each harness runs a small budget in the normal suite; ``make fuzz`` raises it through
HUB_TEST_FUZZ_EXAMPLES (examples per harness).
"""

from __future__ import annotations

import base64
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import stix
from hub.taxii import cursor
from tests import factories as f

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("HUB_TEST_FUZZ_EXAMPLES", "100"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
SECRET = "fuzz-secret"

STIX_KEYS = [
    "type",
    "id",
    "spec_version",
    "created",
    "modified",
    "created_by_ref",
    "revoked",
    "labels",
    "confidence",
    "lang",
    "external_references",
    "object_marking_refs",
    "granular_markings",
    "extensions",
    "pattern",
    "pattern_type",
    "pattern_version",
    "valid_from",
    "valid_until",
    "indicator_types",
    "kill_chain_phases",
    "name",
    "description",
    "hashes",
    "value",
    "resolves_to_refs",
    "definition_type",
    "definition",
    "marking_ref",
    "selectors",
    "x_custom",
    "x_mitre_version",
    "source_ref",
    "target_ref",
    "relationship_type",
    "object_refs",
    "first_seen",
    "last_seen",
    "aliases",
]
STIX_TYPES = [
    "indicator",
    "malware",
    "identity",
    "marking-definition",
    "relationship",
    "sighting",
    "bundle",
    "ipv4-addr",
    "file",
    "domain-name",
    "url",
    "report",
    "x-custom",
    "extension-definition",
    "note",
]
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(STIX_TYPES)
    | st.sampled_from(
        [
            "2024-05-01T00:00:00Z",
            "2024-05-01T00:00:00.000Z",
            "2.1",
            "stix",
            "indicator--0b6d3bd1-3a4a-4a8a-9f1c-9f4e5c1c2b3a",
            "[ipv4-addr:value = '1.2.3.4']",
        ]
    )
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.sampled_from(STIX_KEYS) | st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=40,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(STIX_KEYS) | st.text(max_size=12), JSON, max_size=12))
def test_validate_never_raises_on_json_objects(obj):
    errors = stix.validate(obj)
    assert isinstance(errors, list) and all(isinstance(e, str) for e in errors)


@FUZZ
@given(st.sampled_from(STIX_KEYS), JSON, st.integers(0, 3))
def test_validate_never_raises_on_a_mutated_valid_object(key, value, shape):
    obj = f.indicator(1)
    if shape == 0:
        obj[key] = value
    elif shape == 1:
        obj.pop(key, None)
    elif shape == 2:
        obj["extensions"] = {"extension-definition--0b6d3bd1-3a4a-4a8a-9f1c-9f4e5c1c2b3a": value}
    else:
        obj["granular_markings"] = [{"marking_ref": value, "selectors": [key]}]
    assert isinstance(stix.validate(obj), list)


def test_validate_accepts_the_valid_object_the_fuzzer_mutates():
    assert stix.validate(f.indicator(1)) == []


PATTERN_ATOMS = [
    "[",
    "]",
    "(",
    ")",
    " AND ",
    " OR ",
    " FOLLOWEDBY ",
    "ipv4-addr:value",
    "file:hashes.'SHA-256'",
    " = ",
    " != ",
    " MATCHES ",
    " LIKE ",
    " IN ",
    " ISSUBSET ",
    "'1.2.3.4'",
    "'a\\'b'",
    "10",
    "t'2024'",
    " WITHIN 5 SECONDS",
    " REPEATS 2 TIMES",
    " START t'2024-01-01T00:00:00Z' STOP t'2024-01-02T00:00:00Z'",
    "NOT ",
    "b'AAEC'",
    "h'00ff'",
    ".",
    "*",
    "[0]",
    "'",
    "\\",
    "\x00",
    "\u202e",
    "true",
]


@FUZZ
@given(st.lists(st.sampled_from(PATTERN_ATOMS), max_size=40) | st.text(max_size=200).map(lambda t: [t]))
def test_validate_pattern_never_raises(parts):
    pattern = "".join(parts)
    start = time.perf_counter()
    result = stix.validate_pattern(pattern)
    assert result is None or isinstance(result, str)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize("depth", [10, 1_000, 50_000])
def test_validate_pattern_on_deep_nesting_is_bounded(depth):
    for pattern in (
        "(" * depth + "[ipv4-addr:value = '1.2.3.4']" + ")" * depth,
        "[" + "(" * depth + "ipv4-addr:value = '1.2.3.4'" + ")" * depth + "]",
        "[ipv4-addr:value = '1.2.3.4']" + " AND [ipv4-addr:value = '1.2.3.4']" * depth,
    ):
        start = time.perf_counter()
        result = stix.validate_pattern(pattern)
        assert result is None or isinstance(result, str)
        assert time.perf_counter() - start < 10


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(token: str) -> None:
    try:
        cursor.decode(SECRET, token, now_us=10**16, ttl_us=10**18)
    except cursor.InvalidToken:
        pass


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: _b64(b) + "." + _b64(b[:16])))
def test_cursor_decode_only_raises_invalid_token_on_arbitrary_tokens(token):
    _decode(token)


@FUZZ
@given(st.integers(0, 200), st.text(alphabet="ABCabc019-_.=+/%", min_size=1, max_size=3))
def test_cursor_decode_only_raises_invalid_token_on_damaged_tokens(where, junk):
    pos = cursor.Position(1, "c0ffee00-0000-4000-8000-000000000000", "objects", {"types": ["indicator"]}, 5, 7)
    token = cursor.encode(SECRET, pos)
    where %= len(token) + 1
    _decode(token[:where] + junk + token[where:])
    _decode(token[:where])


def test_cursor_round_trip_survives_the_fuzzed_decoder():
    pos = cursor.Position(1, "c", "objects", {"ids": ["a"]}, 5, 7)
    assert cursor.decode(SECRET, cursor.encode(SECRET, pos), now_us=8, ttl_us=10) == pos


@FUZZ
@given(JSON)
def test_cursor_decode_only_raises_invalid_token_on_signed_payloads_of_any_shape(payload):
    import hashlib
    import hmac
    import json

    body = json.dumps(payload).encode()  # stdlib: it also writes integers beyond 64 bits
    mac = hmac.new(SECRET.encode(), b"cti-hub next v1:" + body, hashlib.sha256).digest()[:16]
    _decode(_b64(body) + "." + _b64(mac))
