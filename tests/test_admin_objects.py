"""The panel's objects list and object page: names and observable values, their indexed search, keyset pages,
versions and withdrawals, and verdict reasons that name collections by alias."""

from __future__ import annotations

import re

import pytest
from alembic import command
from sqlalchemy import event, func, select

from hub import db, ingest
from hub import models as m
from hub.sharing.write import remove_collection
from hub.stix import values
from hub.stix.patterns import pattern_equalities
from hub.store import archive, clock
from tests import factories as f
from tests.worlds import panel_world

SHA = "5F2A9C1E" + "0" * 56


@pytest.fixture
def world(hub):
    return panel_world(hub)


def kr_pk(hub) -> int:
    with hub.session(write=False) as s:
        return s.execute(select(m.Partner.id).where(m.Partner.slug == "krcert")).scalar_one()


def publish(hub, collection: str, objects: list[dict]) -> None:
    result = ingest.ingest_envelope(hub, kr_pk(hub), collection, objects)
    assert not result.failures, result.failures


def listed(body: str) -> list[str]:
    """The object ids of the list's rows, in order."""
    return re.findall(r'<tr data-object="([^"]+)">', body)


def test_terms_come_from_patterns_observables_names_and_aliases():
    assert pattern_equalities(
        "[ipv4-addr:value = '198.51.100.7' OR file:hashes.'SHA-256' = 'ab' AND file:name NOT = 'x.exe']"
        " FOLLOWEDBY [url:value IN ('http://a.example/x', 'http://b\\'c.example/')]"
    ) == [
        ("ipv4-addr:value", "198.51.100.7"),
        ("file:hashes.SHA-256", "ab"),
        ("url:value", "http://a.example/x"),
        ("url:value", "http://b'c.example/"),
    ]
    assert pattern_equalities("[network-traffic:dst_ref[0].value == '10.0.0.1']") == [
        ("network-traffic:dst_ref[0].value", "10.0.0.1")
    ]
    assert pattern_equalities("[domain-name:value LIKE '%.example']") == []
    # One comparison takes a shortcut; spaced out, the same pattern goes through the tokens: one answer.
    for one in ("[file:hashes.'SHA-256' = 'ab']", "[url:value = 'http://b\\'c.example/']", "[x-y:a.b_c='v']"):
        spaced = one.replace("[", "[ ", 1).replace("=", " = ", 1)[:-1] + " ]"
        assert pattern_equalities(one) == pattern_equalities(spaced) != [], one

    ind = f.indicator(1, name="Lazarus Group C2", pattern="[url:value = 'https://CDN.Evil.example/a']")
    assert values.search_terms(ind) == [
        ("url:value", "https://cdn.evil.example/a"),
        ("domain", "cdn.evil.example"),
        ("domain", "evil.example"),
        ("name", "lazarus group c2"),
        ("name", "group c2"),
        ("name", "c2"),
    ]
    # A value named in the name too is one term; words follow white space, from their first letter or digit.
    ip = f.indicator(3, name="Kimsuky exit node: 203.0.113.44 (VPN)", pattern="[ipv4-addr:value = '203.0.113.44']")
    assert [t for _, t in values.search_terms(ip)] == [
        "203.0.113.44",
        "kimsuky exit node: 203.0.113.44 (vpn)",
        "exit node: 203.0.113.44 (vpn)",
        "node: 203.0.113.44 (vpn)",
        "203.0.113.44 (vpn)",
        "vpn)",
    ]
    intrusion = {"type": "intrusion-set", "name": "APT38", "aliases": ["BlueNoroff", "Stardust Chollima"]}
    assert ("name", "bluenoroff") in values.search_terms(intrusion)
    assert ("name", "chollima") in values.search_terms(intrusion)
    sco = {"type": "file", "name": "loader.dll", "hashes": {"MD5": "AA" * 16, "SHA-256": SHA}}
    assert values.observables(sco) == [
        ("file:hashes.SHA-256", SHA),
        ("file:hashes.MD5", "AA" * 16),
        ("file:name", "loader.dll"),
    ]
    assert values.search_terms({"type": "domain-name", "value": "a.b.evil.example"}) == [
        ("domain-name:value", "a.b.evil.example"),
        ("domain", "b.evil.example"),
        ("domain", "evil.example"),
    ]
    hostile = f.indicator(
        2, pattern="[" + " OR ".join(f"ipv4-addr:value = '10.0.{i // 250}.{i % 250}'" for i in range(500)) + "]"
    )
    assert len(values.search_terms(hostile)) == values.MAX_TERMS  # bounded rows per version


def test_the_list_shows_name_and_value_and_finds_them(admin, world, hub):
    shared = world["ids"]["shared"]
    c2 = f.indicator(101, name="Andariel beacon", pattern="[domain-name:value = 'update.evil.example']")
    url = f.indicator(102, name="Kimsuky phishing page", pattern="[url:value = 'https://login.evil.example/x']")
    file_hash = f.indicator(103, name="TraderTraitor loader", pattern=f"[file:hashes.'SHA-256' = '{SHA}']")
    observed = {
        "type": "ipv4-addr",
        "spec_version": "2.1",
        "id": "ipv4-addr--0a6d1a5b-40aa-5d9b-b3d4-3b7b5f4a8e11",
        "value": "203.0.113.77",
    }
    publish(hub, shared, [c2, url, file_hash, observed])

    body = admin.get("/admin/objects/").get_data(as_text=True)
    row = re.search(rf'<tr data-object="{c2["id"]}">(.*?)</tr>', body, re.S).group(1)
    assert "Andariel beacon" in row and "update.evil.example" in row and "domain-name:value" in row
    assert "203.0.113.77" in re.search(rf'<tr data-object="{observed["id"]}">(.*?)</tr>', body, re.S).group(1)

    def found(**query) -> list[str]:
        r = admin.get("/admin/objects/", query_string=query)
        assert r.status_code == 200, r.get_data(as_text=True)
        return listed(r.get_data(as_text=True))

    assert found(text="evil.example") == [url["id"], c2["id"]]  # subdomains and URL hosts, newest first
    assert found(text="UPDATE.EVIL") == [c2["id"]]  # prefix, any case
    assert found(text="update.evil", exact="1") == []
    assert found(text="update.evil.example", exact="1") == [c2["id"]]
    assert found(text=SHA.lower()[:12]) == [file_hash["id"]]
    assert found(text="phishing") == [url["id"]]  # a later word of the name
    assert found(text="203.0.113.77", type="ipv4-addr") == [observed["id"]]
    assert found(text="203.0.113.77", type="indicator") == []
    assert found(text="Lazarus C2 3", partner="krcert") == [world["red"]]
    assert found(text="nothing-like-this") == []
    assert found(id=c2["id"]) == [c2["id"]]


def test_search_reads_no_raw_json(admin, world, hub):
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(hub.engine, "before_cursor_execute", seen)
    try:
        assert listed(admin.get("/admin/objects/?text=lazarus").get_data(as_text=True))
    finally:
        event.remove(hub.engine, "before_cursor_execute", seen)
    searches = [s for s in statements if "object_values" in s]
    assert searches, statements
    for statement in searches:
        where = statement.split("WHERE", 1)[1]
        assert "raw" not in where and "LIKE" not in where.upper(), statement


def test_pages_are_keyset_and_lose_nothing(admin, world, hub):
    batch = [f.indicator(200 + n, name=f"Bulk {n}", pattern=f"[ipv4-addr:value = '192.0.2.{n}']") for n in range(120)]
    publish(hub, world["ids"]["shared"], batch)
    seen, url, pages = [], "/admin/objects/?text=bulk", 0
    while url:
        body = admin.get(url).get_data(as_text=True)
        seen += listed(body)
        pages += 1
        older = re.search(r'<a href="([^"]+)" id="older">', body)
        url = older.group(1).replace("&amp;", "&") if older else ""
        assert "before=" in url or not url
    assert pages == 3 and len(seen) == 120 and set(seen) == {o["id"] for o in batch}
    assert seen == [o["id"] for o in reversed(batch)]
    r = admin.get("/admin/objects/?before=abc")
    assert r.status_code == 400 and "is not a page position" in r.get_data(as_text=True)


def test_terms_leave_with_their_versions(admin, world, hub):
    obj = f.indicator(301, name="Short-lived", pattern="[ipv4-addr:value = '198.18.7.1']")
    publish(hub, world["ids"]["shared"], [obj])
    assert listed(admin.get("/admin/objects/?text=198.18.7.1").get_data(as_text=True)) == [obj["id"]]
    client = f.Client(admin.application.test_client(), world["keys"]["krcert"])
    assert client.delete(f"/dprk/collections/{world['ids']['shared']}/objects/{obj['id']}/").status_code == 200
    assert listed(admin.get("/admin/objects/?text=198.18.7.1").get_data(as_text=True)) == []
    assert orphan_terms(hub) == 0
    # The object page still tells what happened: every partner that could see it lost it.
    page = admin.get(f"/admin/objects/{obj['id']}").get_data(as_text=True)
    assert "No version of this object is stored any more" in page
    withdrawn = re.search(r'<table class="data" id="withdrawals">(.*?)</table>', page, re.S).group(1)
    assert "its originator deleted it" in withdrawn and 'data-partner="cisa"' in withdrawn


def orphan_terms(hub) -> int:
    """Terms whose version is gone (the database drops them with it: a foreign key, or a trigger)."""
    with hub.session(write=False) as s:
        return s.scalar(
            select(func.count())
            .select_from(m.ObjectValue)
            .where(~m.ObjectValue.version_pk.in_(select(m.ObjectVersion.pk)))
        )


def test_terms_leave_with_archived_versions_and_removed_collections(admin, world, hub):
    v1 = f.indicator(311, name="Archived beacon", pattern="[ipv4-addr:value = '198.18.7.11']")
    v2 = {**v1, "modified": "2025-03-02T00:00:00.000Z", "name": "Current beacon"}
    publish(hub, world["ids"]["shared"], [v1, v2])
    with hub.session(write=False) as s:
        coll = s.execute(select(m.Collection).where(m.Collection.uuid == world["ids"]["shared"])).scalar_one()
        terms = s.scalar(select(func.count()).select_from(m.ObjectValue))
    with hub.session() as s:
        clock.lock_clock(s)
        assert archive.archive_superseded(s, coll.id, clock.now_us() + 1, 10, clock.now_us()) == 1
    assert listed(admin.get("/admin/objects/?text=archived beacon").get_data(as_text=True)) == []
    assert listed(admin.get("/admin/objects/?text=current beacon").get_data(as_text=True)) == [v1["id"]]
    with hub.session(write=False) as s:
        assert 0 < s.scalar(select(func.count()).select_from(m.ObjectValue)) < terms
    assert orphan_terms(hub) == 0
    with hub.session() as s:
        remove_collection(s, s.get(m.Collection, coll.id))
    assert listed(admin.get("/admin/objects/?text=198.18.7.11").get_data(as_text=True)) == []
    assert orphan_terms(hub) == 0


def test_the_object_page_shows_versions_and_their_state(admin, world, hub):
    v1 = f.indicator(401, name="Rotating C2", pattern="[ipv4-addr:value = '198.51.100.41']")
    v2 = {**v1, "modified": "2025-03-02T00:00:00.000Z", "revoked": True}
    publish(hub, world["ids"]["shared"], [v1, v2])
    body = admin.get(f"/admin/objects/{v1['id']}").get_data(as_text=True)
    summary = re.search(r'<section class="card" id="summary">(.*?)</section>', body, re.S).group(1)
    assert "Rotating C2" in summary and "198.51.100.41" in summary and "revoked by its originator" in summary
    assert "Only its originator can publish a new version" in summary and "acts for the originator" in summary
    versions = re.search(r'<table class="data" id="versions">(.*?)</table>', body, re.S).group(1)
    newest = re.search(r'<tr data-version="2025-03-02T00:00:00.000Z">(.*?)</tr>', versions, re.S).group(1)
    oldest = re.search(rf'<tr data-version="{v1["modified"]}">(.*?)</tr>', versions, re.S).group(1)
    assert "newest in its collection" in newest and "revoked" in newest and "dprk/shared" in newest
    assert "superseded by a newer version" in oldest and "revoked" not in oldest
    assert "No partner has lost this object" in body


def test_verdict_reasons_name_collections_by_alias(admin, world, hub):
    with hub.session() as s:
        root = s.execute(select(m.ApiRoot).where(m.ApiRoot.slug == "dprk")).scalar_one()
        closed = f.add_collection(s, root, "closed", readers=["partner:cisa"], types=["indicator", "malware"]).uuid
    obj = f.indicator(501)
    publish(hub, closed, [obj])
    pages = [
        admin.get(f"/admin/who?id={obj['id']}").get_data(as_text=True),
        admin.get(f"/admin/objects/{obj['id']}").get_data(as_text=True),
        admin.get(f"/admin/preview?partner=mmcert&collection={closed}").get_data(as_text=True),
    ]
    for body in pages:
        assert "mmcert does not read collection dprk/closed" in body
        reasons = " ".join(re.findall(r'<td class="reason">(.*?)</td>', body, re.S))
        assert closed not in reasons


def test_the_migration_fills_the_terms_of_stored_versions(admin, world, hub):
    obj = f.indicator(601, name="Backfilled beacon", pattern="[domain-name:value = 'old.evil.example']")
    publish(hub, world["ids"]["shared"], [obj])
    with hub.session(write=False) as s:
        before = s.scalar(select(func.count()).select_from(m.ObjectValue))
    config = db.alembic_config(hub.engine.execution_options(hub_write=True, hub_migrate=True))
    command.downgrade(config, "0022_blocklist_warninglists")
    db.upgrade(hub.engine)
    with hub.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.ObjectValue)) == before > 0
    assert listed(admin.get("/admin/objects/?text=evil.example").get_data(as_text=True)) == [obj["id"]]
    assert listed(admin.get("/admin/objects/?text=backfilled").get_data(as_text=True)) == [obj["id"]]


def test_the_dashboard_counts_per_partner_and_day_and_ranks_intrusion_sets(admin, world, hub):
    from hub.admin import dashboard
    from hub.store import clock

    lazarus = {
        "type": "intrusion-set",
        "spec_version": "2.1",
        "id": "intrusion-set--c93fccb1-e8e8-42cf-ae33-2ad1d183913a",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "name": "Lazarus Group",
    }
    kimsuky = {**lazarus, "id": "intrusion-set--0ee2b1d8-5c5e-4b3a-9b7a-3a3e1c6c4b11", "name": "Kimsuky"}
    targets = [f.indicator(700 + n) for n in range(3)]

    def rel(n: int, source: str, target: str) -> dict:
        rid = f"relationship--{f.uuid.uuid5(f.uuid.NAMESPACE_OID, f'rel{n}')}"
        return {
            **{k: lazarus[k] for k in ("spec_version", "created", "modified")},
            "type": "relationship",
            "id": rid,
            "relationship_type": "indicates",
            "source_ref": source,
            "target_ref": target,
        }

    rels = [rel(n, t["id"], lazarus["id"]) for n, t in enumerate(targets)] + [rel(9, targets[0]["id"], kimsuky["id"])]
    publish(hub, world["ids"]["shared"], [lazarus, kimsuky, *targets, *rels])
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        stats = dashboard.dashboard(s, snap)
        stored = s.scalar(
            select(func.count()).select_from(m.ObjectVersion).where(m.ObjectVersion.originator_id == kr_pk(hub))
        )
    today = dashboard.when(clock.now_us())[:10]
    assert stats["per_day"]["krcert"] == {today: stored} and stored == 5 + 9  # the world's 5 and these 9
    assert "hub" not in stats["per_day"] and set(stats["per_day"]) == {"krcert"}
    assert stats["intrusion_sets"] == [("Lazarus Group", 3), ("Kimsuky", 1)]
    body = admin.get("/admin/").get_data(as_text=True)
    assert "Lazarus Group" in body and f"{stored}</td>" in body


def test_a_value_with_nul_is_stored_and_found_without_it(admin, world, hub):
    """No text column holds NUL (PostgreSQL refuses it): terms drop it, so the version is stored and found."""
    odd = f.indicator(104, name="NUL\x00 beacon", pattern="[ipv4-addr:value = '198.51.100.9\x00']")
    publish(hub, world["ids"]["shared"], [odd])
    assert odd["id"] in listed(
        admin.get("/admin/objects/", query_string={"text": "198.51.100.9"}).get_data(as_text=True)
    )


@pytest.mark.parametrize("path", ["/admin/objects/", "/admin/audit/", "/admin/audit.csv"])
def test_a_parameter_with_nul_is_refused_naming_it(admin, path):
    r = admin.get(path, query_string={"text": "a\x00b", "target": "x\x00"})
    assert r.status_code == 400 and "NUL" in r.get_data(as_text=True)
