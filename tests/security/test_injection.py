"""Injection through every parameter and field: SQL, JSON, NUL bytes, header CRLF and path traversal."""

from __future__ import annotations

import uuid

import orjson
import pytest

from tests import factories as f

SQL = [
    "' OR '1'='1",
    "1; DROP TABLE object_versions; --",
    '" OR ""="',
    "') UNION SELECT raw FROM object_versions --",
    "%' OR 1=1 --",
    "\\'; --",
    "indicator--' OR 1=1 --",
]
HOSTILE = SQL + [
    "\x00",
    "a\x00b",
    "../../etc/passwd",
    "..%2F..%2Fetc",
    "\r\nSet-Cookie: a=b",
    "{{7*7}}",
    "${jndi:x}",
    "\u202e",
    "A" * 5000,
]


def assert_clean_error(response, statuses: tuple[int, ...]) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code in statuses, (response.status_code, response.get_data()[:300])
    assert response.headers["Content-Type"] == f.TAXII
    body = response.get_json()
    assert body["http_status"] == str(response.status_code) and body["description"]
    assert "Set-Cookie" not in response.headers


FILTERS = ["match[id]", "match[type]", "match[version]", "match[spec_version]", "added_after", "limit"]


def test_hostile_filter_values_are_a_400_naming_the_parameter(world):
    attacker = world.client("singcert")
    for suffix in ("objects/", "manifest/", f"objects/{world.visible['id']}/"):
        for param in FILTERS:
            for value in HOSTILE:
                r = attacker.get(world.url("shared", suffix), {param: value})
                if suffix.startswith("objects/indicator") and param in ("match[id]", "match[type]"):
                    assert r.status_code in (200, 400), (suffix, param, value)  # not a filter of this endpoint
                    continue
                assert_clean_error(r, (400,))
                if param != "limit":
                    assert param in r.get_json()["description"], (param, value)


@pytest.mark.parametrize(
    "value",
    [
        "indicator--00000000-0000-0000-0000-000000000000' OR '1'='1",
        "indicator--3f1c2b4a-9d8e-4f70-a1b2-c3d4e5f60718,' OR 1=1 --",
    ],
)
def test_sql_after_a_valid_id_is_refused(world, value):
    assert_clean_error(world.client("singcert").get(world.url("shared"), {"match[id]": value}), (400,))


def test_hostile_path_segments_are_a_404(world):
    from urllib.parse import quote

    attacker = world.client("singcert")
    for value in HOSTILE:
        seg = quote(value, safe="")
        paths = [f"/dprk/collections/{seg}/objects/", f"/{seg}/collections/", f"/{seg}/"]
        if "\x00" not in value:  # NUL in status and object ids: see the next test
            paths += [
                f"/dprk/status/{seg}/",
                world.url("shared", f"objects/{seg}/"),
                world.url("shared", f"objects/{seg}/versions/"),
            ]
        for path in paths:
            assert_clean_error(attacker.get(path), (400, 404))


def test_nul_in_status_and_object_ids_is_a_404(world, db_engine_name):
    if db_engine_name == "sqlite":
        pytest.skip("SQLite compares text containing NUL without complaint; the crash is PostgreSQL's")
    attacker = world.client("singcert")
    for path in (
        "/dprk/status/%00/",
        world.url("shared", "objects/indicator--%00/"),
        world.url("shared", "objects/a%00b/versions/"),
    ):
        assert_clean_error(attacker.get(path), (400, 404))


@pytest.mark.parametrize(
    "path",
    [
        "/dprk/collections/../../etc/passwd",
        "/dprk/../taxii2/",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/dprk/collections/%2e%2e%2f%2e%2e%2freference/objects/",
        "/dprk/collections/shared/objects/..%2F..%2F..%2Fstatus/",
    ],
)
def test_path_traversal_finds_nothing(world, path):
    r = world.client("singcert").get(path)
    assert r.status_code in (200, 404)
    assert b"root:" not in r.get_data()
    if r.status_code == 200:  # normalised to a route the caller may read anyway
        assert world.hidden["id"].encode() not in r.get_data()


def test_crlf_in_a_header_value_is_not_reflected(world):
    r = world.client("singcert").get(world.url("shared"), headers={"Accept": f.TAXII + "\tx-injected: 1"})
    assert r.status_code in (200, 406) and "x-injected" not in {k.lower() for k in r.headers.keys()}


def test_hostile_strings_inside_stix_objects_are_stored_inert(world):
    """SQL, NUL and control characters in property values round-trip unchanged on every engine."""
    payloads = {f"x_field_{i}": value for i, value in enumerate(HOSTILE)}
    obj = f.indicator(960, description="'; DROP TABLE partners; --\x00\r\n", **payloads)
    kr = world.client("krcert")
    assert kr.post(world.url("shared"), [obj]).get_json()["success_count"] == 1
    assert kr.get(world.url("shared", f"objects/{obj['id']}/")).get_json()["objects"] == [obj]
    assert world.client("cisa").get(world.url("shared")).status_code == 200


@pytest.mark.parametrize(
    "field,value",
    [
        ("id", "indicator--' OR 1=1 --"),
        ("id", "indicator--\x00"),
        ("type", "indicator\x00"),
        ("type", "'; DROP TABLE x; --"),
        ("spec_version", "2.1\x00"),
        ("modified", "2024-05-01T00:00:00.000Z\x00"),
        ("created_by_ref", "identity--\x00"),
        ("object_marking_refs", ["marking-definition--' OR 1=1"]),
        ("object_marking_refs", ["\x00"]),
        ("pattern", "[ipv4-addr:value = '\x00']"),
        ("pattern", "[ipv4-addr:value = '1' OR 1=1 --']"),
    ],
)
def test_hostile_values_in_indexed_fields_are_refused_per_object(world, field, value):
    obj = f.indicator(961)
    obj[field] = value
    r = world.client("krcert").post(world.url("shared"), [obj, f.indicator(962)])
    assert r.status_code == 202, r.get_data()[:300]
    status = r.get_json()
    assert status["total_count"] == 2 and status["success_count"] >= 1


def test_hostile_sharing_marking_lists_are_refused(world):
    mid = f"marking-definition--{uuid.uuid4()}"
    for lists in (
        {"partners": ["cisa' OR '1'='1"]},
        {"groups": ["\x00"]},
        {"partners": ["*"]},
        {"exclude": ["krcert\x00"]},
        {"countries": []},
    ):
        marking = f.sharing_marking(mid, **lists)
        status = world.client("krcert").post(world.url("shared"), [marking]).get_json()
        assert status["failure_count"] == 1, lists


def test_duplicate_keys_in_the_envelope_take_the_last_one_consistently(world):
    body = b'{"objects": [' + orjson.dumps(f.indicator(963)) + b'], "objects": "nope"}'
    r = world.client("krcert").post(world.url("shared"), body=body)
    assert_clean_error(r, (400, 422))


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b'{"objects": ["\xc3\x28"]}',
        b"\x00",
        b"",
        b"null",
        b"[]",
        b'{"objects": {}}',
        b'"objects"',
        b"{" * 10,
    ],
)
def test_broken_bodies_are_a_clean_4xx(world, body):
    # An empty body is refused by medallion's Content-Length check as a 413.
    assert_clean_error(world.client("krcert").post(world.url("shared"), body=body), (400, 413, 422))


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "text/plain",
        "application/taxii+json;charset=latin-1",
        "application/taxii+json;version=2.0",
        "multipart/form-data; boundary=x",
    ],
)
def test_other_media_types_are_a_415(world, content_type):
    r = world.client("krcert").post(world.url("shared"), [f.indicator(964)], headers={"Content-Type": content_type})
    assert_clean_error(r, (415,))
