"""Benign values never reach a blocklist: private and special-use addresses and names, MISP warninglists.

A partner that publishes ``10.0.0.1`` or ``c2.internal`` (pasted from a sandbox report, or on purpose)
must not make every subscriber's firewall block its own network, a public DNS resolver or a top site.
Such indicators stay stored and in the STIX, CSV and ECS feeds, with the list named; only a collection
that allows warninglisted values lists them.
"""

from __future__ import annotations

import csv
import io
import socket

import orjson
import pytest
from sqlalchemy import select

from hub import ledger, reference, stix, warninglists
from hub import models as m
from hub.policy import TLP
from tests import factories as f
from tests import panel

GREEN = stix.TLP2_MARKINGS[TLP.GREEN]["id"]
EMPTY_FILE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

# (pattern, the list that names it): one of each kind the blocklists list.
BENIGN = {
    "private": ("[ipv4-addr:value = '10.0.0.1']", "hub warninglist rfc1918"),
    "cgnat": ("[ipv4-addr:value = '100.64.12.7']", "hub warninglist rfc6598"),
    "ula": ("[ipv6-addr:value = 'fd12:3456:789a::1']", "hub warninglist rfc4193"),
    "resolver": ("[ipv4-addr:value = '8.8.8.8']", "MISP warninglist public-dns-v4"),
    "internal": ("[domain-name:value = 'c2.internal']", "hub warninglist non-public-names"),
    "top-site": ("[domain-name:value = 'dns.google']", "MISP warninglist public-dns-hostname"),
    "internal-url": ("[url:value = 'http://c2.internal/beacon']", "hub warninglist non-public-names"),
    "empty-file": (f"[file:hashes.'SHA-256' = '{EMPTY_FILE}']", "MISP warninglist empty-hashes"),
}
# Public values on no list: Star JV's DPRK address block, a made-up domain, URL and hash.
PUBLIC = {
    "ip": "[ipv4-addr:value = '175.45.178.20']",
    "domain": "[domain-name:value = 'dprk-recruit-portal.com']",
    "url": "[url:value = 'https://dprk-recruit-portal.com/offer.pdf']",
    "hash": f"[file:hashes.'SHA-256' = '{'ab' * 32}']",
}
BENIGN_VALUES = ("10.0.0.1", "100.64.12.7", "fd12:3456:789a::1", "8.8.8.8", "c2.internal", "dns.google", EMPTY_FILE)
PUBLIC_VALUES = ("175.45.178.20", "dprk-recruit-portal.com", "dprk-recruit-portal.com/offer.pdf", "ab" * 32)
BLOCKLISTS = ("ip.txt", "domain.txt", "url.txt", "sha256.txt")


@pytest.mark.parametrize(
    ("kind", "value", "listed_on"),
    [
        ("ipv4-addr", "10.0.0.1", "rfc1918"),
        ("ipv4-addr", "172.31.255.254", "rfc1918"),
        ("ipv4-addr", "192.168.1.0/24", "rfc1918"),
        ("ipv4-addr", "100.64.0.1", "rfc6598"),
        ("ipv4-addr", "100.127.255.254", "rfc6598"),
        ("ipv6-addr", "fc00::1", "rfc4193"),
        ("ipv6-addr", "::ffff:10.1.2.3", "rfc1918"),  # an IPv4-mapped private address
        ("ipv6-addr", "64:ff9b::a00:1", "rfc1918"),  # NAT64 of 10.0.0.1
        ("ipv4-addr", "192.0.2.7", "documentation"),
        ("ipv6-addr", "2001:db8::1", "documentation"),
        ("ipv4-addr", "198.18.0.1", "rfc2544"),
        ("ipv4-addr", "8.8.8.0/24", "public-dns-v4"),  # a network holding a resolver
        ("ipv4-addr", "1.1.1.1", "public-dns-v4"),
        ("domain-name", "c2.internal", "non-public-names"),
        ("domain-name", "NAS.LOCAL", "non-public-names"),
        ("domain-name", "router.home.arpa", "non-public-names"),
        ("domain-name", "x.localhost", "non-public-names"),
        ("domain-name", "evil.test", "non-public-names"),
        ("domain-name", "files.lan", "non-public-names"),
        ("domain-name", "www.example.com", "rfc6761"),
        ("domain-name", "google.com", "google"),
        ("domain-name", "www.github.com", "lots-project"),
        ("domain-name", "wikipedia.org", "alexa"),
        ("domain-name", "bit.ly", "url-shortener"),
        ("domain-name", "co.uk", "second-level-tlds"),
        ("url", "http://10.0.0.1/x", "rfc1918"),
        ("url", "https://c2.internal:8443/a", "non-public-names"),
        ("url", "https://google.com/", "google"),  # a top site's home page
        ("file:SHA-256", EMPTY_FILE.upper(), "empty-hashes"),
    ],
)
def test_benign_values_are_on_a_warninglist(kind, value, listed_on):
    found = warninglists.match(kind, value)
    assert found is not None and found.list_id == listed_on, found


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("ipv4-addr", "175.45.178.20"),
        ("ipv4-addr", "100.128.0.1"),  # just past CGNAT
        ("ipv4-addr", "172.32.0.1"),  # just past 172.16/12
        ("ipv6-addr", "2a05:d014:1:2::3"),
        ("domain-name", "dprk-recruit-portal.com"),
        ("domain-name", "evil.google.com"),  # a subdomain of a top site is a precise block
        ("domain-name", "internal.example-corp.com"),
        ("url", "https://google.com/evil/payload.exe"),  # a file on a top site, not the site
        ("url", "https://dprk-recruit-portal.com/offer.pdf"),
        ("file:SHA-256", "ab" * 32),
    ],
)
def test_public_values_are_on_no_warninglist(kind, value):
    assert warninglists.match(kind, value) is None


def test_every_chosen_list_ships_in_the_package_and_loads_without_the_network(monkeypatch):
    for list_ids in warninglists.MISP_LISTS.values():
        for list_id in list_ids:
            assert (warninglists.LISTS_DIR / list_id / "list.json").is_file(), list_id

    def no_network(*args, **kwargs):
        raise AssertionError("the warninglists must load offline")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for build in warninglists._BUILDERS.values():
        assert build()  # builds a fresh table, leaving the process's cache alone


@pytest.fixture
def world(hub):
    """krcert publishes into dprk/strict (the default) and dprk/lenient (warninglisted values allowed)."""
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        root = f.add_root(s, "dprk")
        f.add_collection(s, root, "strict")
        f.add_collection(s, root, "lenient", allow_warninglisted=True)
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
        panel.add_accounts(s)
        ids = {c.alias: c.uuid for c in s.scalars(select(m.Collection))}
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "mycert")}
    objects = {}
    for alias, base in (("strict", 9000), ("lenient", 9100)):
        patterns = [*(p for p, _ in BENIGN.values()), *PUBLIC.values()]
        objects[alias] = [f.indicator(base + i, pattern=p, markings=[GREEN]) for i, p in enumerate(patterns)]
    return {"ids": ids, "keys": keys, "objects": objects}


def publish(app, world, alias: str) -> dict:
    client = f.Client(app.test_client(), world["keys"]["krcert"])
    status = client.post(f"/dprk/collections/{world['ids'][alias]}/objects/", world["objects"][alias]).get_json()
    assert status["success_count"] == len(world["objects"][alias]) and status["failure_count"] == 0, status
    return status


def feed(app, world, alias: str, fmt: str) -> str:
    resp = app.test_client().get(
        f"/feeds/dprk/{alias}/{fmt}", headers={"Authorization": f"Bearer {world['keys']['mycert']}"}
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_data(as_text=True)


def lines(app, world, alias: str) -> set[str]:
    return {line for fmt in BLOCKLISTS for line in feed(app, world, alias, fmt).splitlines()}


def test_warninglisted_values_stay_out_of_every_blocklist_with_the_list_named(app, world):
    status = publish(app, world, "strict")
    notes = {s["id"]: s.get("message", "") for s in status["successes"]}
    for obj, (_, listed_on) in zip(world["objects"]["strict"], BENIGN.values(), strict=False):
        assert listed_on in notes[obj["id"]] and "left out of the blocklists" in notes[obj["id"]]
    public_ids = {o["id"] for o in world["objects"]["strict"][len(BENIGN) :]}
    assert all(notes[i] == "" for i in public_ids)  # a public value gets no note
    assert all(set(s) <= {"id", "version", "message"} for s in status["successes"])  # TAXII 2.1 status-details

    listed = lines(app, world, "strict")
    assert not listed & set(BENIGN_VALUES)
    assert listed >= set(PUBLIC_VALUES)

    rows = {r["value"]: r for r in csv.DictReader(io.StringIO(feed(app, world, "strict", "csv")))}
    for (pattern, listed_on), value in zip(
        BENIGN.values(), (*BENIGN_VALUES[:6], "http://c2.internal/beacon", EMPTY_FILE), strict=True
    ):
        assert listed_on in rows[value]["blocklist"], (pattern, rows[value])
    assert all(rows[v]["blocklist"] == "" for v in ("175.45.178.20", "dprk-recruit-portal.com"))
    docs = [orjson.loads(line) for line in feed(app, world, "strict", "ecs").splitlines()]
    by_value = {
        d["threat"]["indicator"].get("ip") or d["threat"]["indicator"].get("url", {}).get("domain"): d for d in docs
    }
    assert "rfc1918" in by_value["10.0.0.1"]["labels"]["blocklist"]
    assert by_value["175.45.178.20"]["labels"]["blocklist"] == ""
    assert "10.0.0.1" in feed(app, world, "strict", "stix")  # kept in STIX, as published


def test_a_collection_that_allows_warninglisted_values_lists_them(app, world):
    status = publish(app, world, "lenient")
    first = world["objects"]["lenient"][0]["id"]
    assert "lists it anyway" in next(s["message"] for s in status["successes"] if s["id"] == first)
    listed = lines(app, world, "lenient")
    assert listed >= set(BENIGN_VALUES) | set(PUBLIC_VALUES)
    rows = list(csv.DictReader(io.StringIO(feed(app, world, "lenient", "csv"))))
    assert all(r["blocklist"] == "" for r in rows)


def test_the_ledger_records_only_the_values_the_blocklist_listed(app, hub, world):
    publish(app, world, "strict")
    publish(app, world, "lenient")
    for alias in ("strict", "lenient"):
        feed(app, world, alias, "ip.txt")
    private = {alias: world["objects"][alias][0]["id"] for alias in ("strict", "lenient")}
    public = world["objects"]["strict"][len(BENIGN)]["id"]
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)

        def received(stix_id: str) -> list[tuple[str, str, str]]:
            return [(r.partner, r.endpoint, r.collection) for r in ledger.who_received(s, snap, stix_id)]

        assert ("mycert", "ip.txt", "strict") not in received(private["strict"])
        assert ("mycert", "ip.txt", "strict") in received(public)
        assert ("mycert", "ip.txt", "lenient") in received(private["lenient"])


def test_the_panel_names_the_list_on_the_object_page(app, world):
    publish(app, world, "strict")
    publish(app, world, "lenient")
    client = panel.logged_in(app)
    strict = client.get(f"/admin/objects/{world['objects']['strict'][0]['id']}").get_data(as_text=True)
    assert "not in the blocklists" in strict and "rfc1918" in strict and "RFC 1918 private addresses" in strict
    lenient = client.get(f"/admin/objects/{world['objects']['lenient'][4]['id']}").get_data(as_text=True)
    assert "listed in its blocklist" in lenient and "non-public-names" in lenient
    assert "lists it anyway" in lenient
    listing = client.get("/admin/collections/").get_data(as_text=True)
    assert "no warninglisted values" in listing and "warninglisted values listed" in listing
