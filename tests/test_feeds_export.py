"""SIEM feeds: every format, incremental, under the TAXII sharing rules."""

from __future__ import annotations

import base64
import csv
import io

import orjson
import pytest

from hub import ingest, reference, stix
from hub.policy import TLP
from hub.runtime import Hub
from tests import factories as f

GREEN = stix.TLP2_MARKINGS[TLP.GREEN]["id"]
AMBER = stix.TLP2_MARKINGS[TLP.AMBER]["id"]


@pytest.fixture
def hub(app) -> Hub:
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        f.add_partner(s, "cisa", "US", TLP.RED)
        root = f.add_root(s, "dprk")
        # Their blocklists list the documentation-range values (RFC 5737, RFC 2606) these tests publish.
        f.add_collection(s, root, "shared", max_tlp=TLP.RED, allow_warninglisted=True)
        f.add_collection(
            s, root, "secret", readers=["partner:krcert"], writers=["partner:krcert"], allow_warninglisted=True
        )
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
    return hub


def coll(hub: Hub, alias: str) -> str:
    with hub.session(write=False) as s:
        return next(c.uuid for c in hub.snapshot(s).collections.values() if c.alias == alias)


def post(hub: Hub, slug: str, alias: str, objects: list[dict]) -> None:
    with hub.session(write=False) as s:
        pk = hub.snapshot(s).by_slug[slug]
    result = ingest.ingest_envelope(hub, pk, coll(hub, alias), objects)
    assert not result.failures, result.failures


def ind(n: int, pattern: str, **extra) -> dict:
    return f.indicator(n, pattern=pattern, **extra)


@pytest.fixture
def data(hub):
    post(
        hub,
        "krcert",
        "shared",
        [
            ind(1, "[ipv4-addr:value = '198.51.100.1']", markings=[GREEN], confidence=80),
            ind(2, "[domain-name:value = 'evil.example']", markings=[GREEN]),
            ind(3, "[url:value = 'http://evil.example/a']", markings=[GREEN]),
            ind(4, "[file:hashes.'SHA-256' = '" + "ab" * 32 + "']", markings=[GREEN]),
            ind(5, "[ipv4-addr:value = '198.51.100.5']", markings=[AMBER]),
            ind(6, "[ipv4-addr:value = '198.51.100.6']", markings=[GREEN], revoked=True),
            ind(7, "[ipv4-addr:value = '198.51.100.7']", markings=[GREEN], valid_until="2024-06-01T00:00:00Z"),
            {
                "type": "malware",
                "spec_version": "2.1",
                "id": "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
                "created": f.CLOCK,
                "modified": f.CLOCK,
                "name": "MagicRAT",
                "is_family": True,
            },
        ],
    )
    post(hub, "krcert", "secret", [ind(8, "[ipv4-addr:value = '198.51.100.8']")])
    return {slug: f.key_for(hub, slug) for slug in ("krcert", "mycert", "cisa")}


def get(app, path: str, key: str | None, basic: str = "", **params):
    headers = {}
    if key and basic:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{basic}:{key}".encode()).decode()
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return app.test_client().get(path, headers=headers, query_string=params)


def test_blocklists_follow_the_sharing_rules(app, data):
    kr = get(app, "/feeds/dprk/shared/ip.txt", data["krcert"])
    assert kr.status_code == 200 and kr.mimetype == "text/plain"
    assert kr.get_data(as_text=True).split() == ["198.51.100.1", "198.51.100.5"]
    my = get(app, "/feeds/dprk/shared/ip.txt", data["mycert"], basic="mycert")
    assert my.get_data(as_text=True).split() == ["198.51.100.1"]  # AMBER is above mycert's clearance
    assert get(app, "/feeds/dprk/shared/domain.txt", data["mycert"]).get_data(as_text=True) == "evil.example\n"
    assert get(app, "/feeds/dprk/shared/url.txt", data["mycert"]).get_data(as_text=True) == "evil.example/a\n"
    assert get(app, "/feeds/dprk/shared/sha256.txt", data["mycert"]).get_data(as_text=True) == "ab" * 32 + "\n"
    removal = get(app, "/feeds/dprk/shared/ip.txt", data["mycert"], include="withdrawn")
    assert removal.get_data(as_text=True).split() == ["198.51.100.6", "198.51.100.7"]


def test_hidden_collections_are_absent_and_auth_is_required(app, data):
    hidden = get(app, "/feeds/dprk/secret/ip.txt", data["cisa"])
    missing = get(app, "/feeds/dprk/nope/ip.txt", data["cisa"])
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_data() == get(app, "/feeds/dprk/secret/ip.txt", data["cisa"]).get_data()
    assert sorted(hidden.headers.keys()) == sorted(missing.headers.keys())
    assert get(app, "/feeds/dprk/secret/ip.txt", data["krcert"]).get_data(as_text=True) == "198.51.100.8\n"
    for key in (None, "chub_wrong"):
        resp = get(app, "/feeds/dprk/shared/ip.txt", key)
        assert resp.status_code == 401 and "Basic" in resp.headers["WWW-Authenticate"]
    assert get(app, "/feeds/dprk/shared/pdf", data["cisa"]).status_code == 404
    bad = get(app, "/feeds/dprk/shared/csv", data["cisa"], since="yesterday")
    assert bad.status_code == 400 and "since" in bad.get_data(as_text=True)


def test_stix_bundle_csv_and_ecs(app, data):
    bundle = orjson.loads(get(app, "/feeds/dprk/shared/stix", data["mycert"]).get_data())
    assert bundle["type"] == "bundle"
    ids = {o["id"] for o in bundle["objects"]}
    assert "malware--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061" in ids and len(ids) == 5  # 4 active GREEN + malware
    rows = list(csv.DictReader(io.StringIO(get(app, "/feeds/dprk/shared/csv", data["krcert"]).get_data(as_text=True))))
    assert [r["value"] for r in rows] == [
        "198.51.100.1",
        "evil.example",
        "http://evil.example/a",
        "ab" * 32,
        "198.51.100.5",
    ]
    assert rows[0]["tlp"] == "TLP:GREEN" and rows[0]["status"] == "active" and rows[4]["tlp"] == "TLP:AMBER"
    lines = get(app, "/feeds/dprk/shared/ecs", data["krcert"], include="withdrawn").get_data(as_text=True)
    docs = [orjson.loads(x) for x in lines.splitlines()]
    assert len(docs) == 7
    first = docs[0]
    assert first["event"] == {"kind": "enrichment", "category": ["threat"], "type": ["indicator"]}
    indicator = first["threat"]["indicator"]
    assert indicator["ip"] == "198.51.100.1" and indicator["type"] == "ipv4-addr"
    assert indicator["confidence"] == "High" and indicator["marking"] == {"tlp": "GREEN", "tlp_version": "2.0"}
    assert indicator["provider"] == "krcert" and first["threat"]["feed"]["name"]
    assert docs[3]["threat"]["indicator"]["file"] == {"hash": {"sha256": "ab" * 32}}
    assert docs[1]["threat"]["indicator"]["url"] == {"domain": "evil.example"}
    assert [d.get("tags") for d in docs[5:]] == [["withdrawn"], ["withdrawn"]]


def test_incremental_cursor(app, hub, data):
    first = get(app, "/feeds/dprk/shared/ip.txt", data["krcert"])
    cursor = first.headers["X-Feed-Cursor"]
    stix.parse_filter_timestamp(cursor)
    again = get(app, "/feeds/dprk/shared/ip.txt", data["krcert"], since=cursor)
    assert again.get_data() == b"" and again.headers["X-Feed-Cursor"] == cursor
    post(
        hub,
        "krcert",
        "shared",
        [
            ind(9, "[ipv4-addr:value = '198.51.100.9']", markings=[GREEN]),
            ind(6, "[ipv4-addr:value = '198.51.100.6']", markings=[GREEN], modified="2024-05-02T00:00:00.000Z"),
        ],
    )  # un-revoked: a new version
    later = get(app, "/feeds/dprk/shared/ip.txt", data["krcert"], since=cursor)
    assert later.get_data(as_text=True).split() == ["198.51.100.9", "198.51.100.6"]
    assert stix.parse_filter_timestamp(later.headers["X-Feed-Cursor"]) > stix.parse_filter_timestamp(cursor)


def test_large_feed_streams_in_pages(app, hub, data, monkeypatch):
    from feeds import export

    monkeypatch.setattr(export, "PAGE", 7)
    post(
        hub,
        "cisa",
        "shared",
        [ind(100 + n, f"[ipv4-addr:value = '203.0.113.{n}']", markings=[GREEN]) for n in range(40)],
    )
    resp = get(app, "/feeds/dprk/shared/ip.txt", data["mycert"])
    assert resp.is_streamed
    values = resp.get_data(as_text=True).split()
    assert len(values) == len(set(values)) == 41


def test_sharing_markings_and_originator_view_apply_to_feeds(app, hub, data):
    marking = "marking-definition--1d4c7a4e-58a3-4c35-9d1f-5b0f4f3a6c11"
    post(
        hub,
        "krcert",
        "shared",
        [
            f.sharing_marking(marking, partners=["cisa"]),
            ind(20, "[ipv4-addr:value = '192.0.2.20']", markings=[GREEN, marking]),
            ind(21, "[ipv4-addr:value = '192.0.2.21']", markings=[stix.TLP2_MARKINGS[TLP.RED]["id"], marking]),
        ],
    )
    cisa = get(app, "/feeds/dprk/shared/ip.txt", data["cisa"]).get_data(as_text=True).split()
    mycert = get(app, "/feeds/dprk/shared/ip.txt", data["mycert"]).get_data(as_text=True).split()
    krcert = get(app, "/feeds/dprk/shared/ip.txt", data["krcert"]).get_data(as_text=True).split()
    assert {"192.0.2.20", "192.0.2.21"} <= set(cisa)
    assert not {"192.0.2.20", "192.0.2.21"} & set(mycert)
    assert {"192.0.2.20", "192.0.2.21"} <= set(krcert)  # the originator always sees its own objects
    bundle = orjson.loads(get(app, "/feeds/dprk/shared/stix", data["mycert"]).get_data())
    assert not any("192.0.2.2" in o.get("pattern", "") for o in bundle["objects"])
