"""Every TAXII endpoint, filter and error through the Flask test client, under the sharing rules."""

from __future__ import annotations

import base64
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from hub import accounts, stix
from hub.ids import HUB_NAMESPACE
from hub.store import clock
from tests import factories as f
from tests.worlds import taxii_world

AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
RED = "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1"
TLP1_RED = "marking-definition--5e57c739-391a-4eb3-9eb6-2ae5a4c7c8f0"


@pytest.fixture
def world(hub):
    return taxii_world(hub)


@pytest.fixture
def as_(app, world):
    def client(slug: str) -> f.Client:
        return f.Client(app.test_client(), world["keys"][slug])

    return client


def objects_url(world, alias: str, suffix: str = "objects/") -> str:
    return f"/dprk/collections/{world['ids'][alias]}/{suffix}"


def ids_of(response) -> list[str]:
    return [o["id"] for o in response.get_json().get("objects", [])]


# --------------------------------------------------------------------- discovery, roots, collections


def test_discovery_lists_absolute_roots_from_the_request(as_):
    r = as_("krcert").get("/taxii2/")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == f.TAXII
    body = r.get_json()
    assert body["api_roots"] == ["http://localhost/dprk/"] and body["default"] == "http://localhost/dprk/"


def test_discovery_uses_public_url_behind_a_proxy(make_app, world):
    app = make_app(public_url="https://hub.example.org/")
    client = f.Client(app.test_client(), world["keys"]["krcert"])
    assert client.get("/taxii2/").get_json()["api_roots"] == ["https://hub.example.org/dprk/"]


def test_missing_credentials_get_taxii_401_with_challenge(app, world):
    r = app.test_client().get("/taxii2/", headers={"Accept": f.TAXII})
    assert r.status_code == 401
    assert r.headers["Content-Type"] == f.TAXII
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.get_json()["http_status"] == "401"


def test_api_root_information(as_):
    body = as_("mycert").get("/dprk/").get_json()
    assert body["versions"] == [f.TAXII] and body["max_content_length"] == 200_000


def test_unknown_api_root_is_404_json(as_):
    r = as_("mycert").get("/nope/")
    assert r.status_code == 404 and r.get_json()["http_status"] == "404"


def test_collections_are_filtered_per_partner(as_, world):
    mine = {c["alias"]: c for c in as_("singcert").get("/dprk/collections/").get_json()["collections"]}
    assert "rokus" not in mine
    assert mine["wo"]["can_read"] is False and mine["wo"]["can_write"] is True
    assert set(as_("krcert").get("/dprk/collections/").get_json()["collections"][0]) >= {
        "id",
        "title",
        "can_read",
        "can_write",
        "media_types",
    }
    assert as_("singcert").get(f"/dprk/collections/{world['ids']['rokus']}/").status_code == 404
    assert as_("krcert").get(f"/dprk/collections/{world['ids']['rokus']}/").status_code == 200


def test_collection_by_alias(as_):
    assert as_("krcert").get("/dprk/collections/shared/").get_json()["alias"] == "shared"


def test_reference_collection_holds_identities_and_markings(as_, world):
    r = as_("mycert").get("/dprk/collections/reference/objects/", {"limit": 100})
    objs = r.get_json()["objects"]
    types = {o["type"] for o in objs}
    assert {"identity", "marking-definition", "extension-definition"} <= types
    names = {o.get("name") for o in objs}
    assert "Share with: ROKUS" in names and "TLP:AMBER+STRICT" in names and "KRCERT" in names


# --------------------------------------------------------------------- publish and read


def test_publish_then_read_every_endpoint(as_, world):
    kr = as_("krcert")
    obj = f.indicator(1, markings=[GREEN])
    r = kr.post(objects_url(world, "shared"), [obj])
    assert r.status_code == 202
    status = r.get_json()
    assert status["status"] == "complete" and status["success_count"] == 1 and status["total_count"] == 1
    assert kr.get(f"/dprk/status/{status['id']}/").get_json() == status
    listing = kr.get(objects_url(world, "shared"))
    assert ids_of(listing) == [obj["id"]]
    assert listing.headers["X-TAXII-Date-Added-First"].endswith("Z")
    assert len(listing.headers["X-TAXII-Date-Added-First"]) == 27
    one = kr.get(objects_url(world, "shared", f"objects/{obj['id']}/"))
    assert one.get_json()["objects"][0] == obj
    versions = kr.get(objects_url(world, "shared", f"objects/{obj['id']}/versions/"))
    assert versions.get_json()["versions"] == [obj["modified"]]
    manifest = kr.get(objects_url(world, "shared", "manifest/")).get_json()["objects"]
    assert manifest[0]["id"] == obj["id"] and manifest[0]["version"] == obj["modified"]
    assert manifest[0]["media_type"] == "application/stix+json;version=2.1"


def test_stored_object_is_returned_byte_for_byte(as_, world):
    obj = f.indicator(2, markings=[GREEN], x_custom_score=87.5, description="ünïcode ✓")
    as_("krcert").post(objects_url(world, "shared"), [obj])
    got = as_("krcert").get(objects_url(world, "shared")).get_json()["objects"][0]
    assert got == obj and list(got) == list(obj)


def test_status_belongs_to_its_publisher(as_, world):
    status = as_("krcert").post(objects_url(world, "shared"), [f.indicator(3)]).get_json()
    assert as_("cisa").get(f"/dprk/status/{status['id']}/").status_code == 404
    assert as_("cisa").get(f"/dprk/status/{uuid.uuid4()}/").status_code == 404


def test_duplicate_post_is_a_success_and_stores_once(as_, world):
    obj = f.indicator(4)
    for _ in range(2):
        status = as_("krcert").post(objects_url(world, "shared"), [obj]).get_json()
        assert status["success_count"] == 1 and status["failure_count"] == 0
    assert len(ids_of(as_("krcert").get(objects_url(world, "shared"), {"match[version]": "all"}))) == 1


def test_changed_content_under_same_version_is_refused(as_, world):
    obj = f.indicator(5)
    as_("krcert").post(objects_url(world, "shared"), [obj])
    status = as_("krcert").post(objects_url(world, "shared"), [{**obj, "name": "changed"}]).get_json()
    assert status["failure_count"] == 1 and "immutable" in status["failures"][0]["message"]


def test_envelope_with_invalid_objects_stores_the_valid_ones(as_, world):
    good, bad = f.indicator(6), {**f.indicator(7), "pattern": "[ipv4-addr:value = "}
    status = as_("krcert").post(objects_url(world, "shared"), [good, bad, "nonsense"]).get_json()
    assert status["success_count"] == 1 and status["failure_count"] == 2
    reasons = {x["id"]: x["message"] for x in status["failures"]}
    assert "pattern" in reasons[bad["id"]]
    assert ids_of(as_("krcert").get(objects_url(world, "shared"))) == [good["id"]]


# --------------------------------------------------------------------- filters and paging


def _publish_versions(as_, world):
    kr = as_("krcert")
    v1 = f.indicator(10, modified="2024-05-01T00:00:00.000Z")
    v2 = {**v1, "modified": "2024-05-02T00:00:00.000Z", "confidence": 50}
    v3 = {**v1, "modified": "2024-05-03T00:00:00.000Z", "confidence": 90}
    other = f.indicator(11)
    rel = {
        "type": "relationship",
        "spec_version": "2.1",
        "id": f"relationship--{uuid.uuid4()}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "relationship_type": "indicates",
        "source_ref": v1["id"],
        "target_ref": "intrusion-set--1e5b3b7c-3e2e-4b5b-9b8b-3b1c1d7f6a11",
    }
    kr.post(objects_url(world, "shared"), [v1, v2, other, rel, v3])
    return v1, v2, v3, other, rel


def test_version_filters(as_, world):
    v1, v2, v3, other, rel = _publish_versions(as_, world)
    kr, url = as_("krcert"), objects_url(world, "shared")
    versions = {o["id"]: o["modified"] for o in kr.get(url).get_json()["objects"]}
    assert versions[v1["id"]] == v3["modified"]
    got = kr.get(url, {"match[version]": "first", "match[id]": v1["id"]}).get_json()["objects"]
    assert [o["modified"] for o in got] == [v1["modified"]]
    got = kr.get(url, {"match[version]": "all", "match[id]": v1["id"]}).get_json()["objects"]
    assert len(got) == 3
    got = kr.get(url, {"match[version]": "first,last", "match[id]": v1["id"]}).get_json()["objects"]
    assert sorted(o["modified"] for o in got) == [v1["modified"], v3["modified"]]
    got = kr.get(url, {"match[version]": "2024-05-02T00:00:00Z", "match[id]": v1["id"]}).get_json()["objects"]
    assert [o["modified"] for o in got] == [v2["modified"]]
    assert ids_of(kr.get(url, {"match[type]": "relationship"})) == [rel["id"]]
    assert set(ids_of(kr.get(url, {"match[id]": f"{other['id']},{rel['id']}"}))) == {other["id"], rel["id"]}
    assert ids_of(kr.get(url, {"match[spec_version]": "2.0"})) == []
    versions = kr.get(objects_url(world, "shared", f"objects/{v1['id']}/versions/")).get_json()["versions"]
    assert versions == [v1["modified"], v2["modified"], v3["modified"]]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "-3"},
        {"limit": "ten"},
        {"added_after": "yesterday"},
        {"match[version]": "newest"},
        {"match[version]": "all,last"},
        {"match[version]": "last,last"},
        {"match[id]": "not-an-id"},
        {"match[type]": "Indicator!"},
        {"match[spec_version]": "two"},
    ],
)
def test_malformed_filters_are_400_naming_the_problem(as_, world, params):
    r = as_("krcert").get(objects_url(world, "shared"), params)
    assert r.status_code == 400, r.get_data()
    body = r.get_json()
    assert body["http_status"] == "400" and body["description"]


def test_repeated_parameter_is_400(as_, world):
    url = objects_url(world, "shared") + "?match[type]=indicator&match[type]=malware"
    assert as_("krcert").http.get(url, headers=as_("krcert").headers()).status_code == 400


@pytest.mark.parametrize(
    "form",
    [
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "9Z",  # digits past the microsecond
        lambda t: t.astimezone(timezone(timedelta(hours=9))).strftime("%Y-%m-%dT%H:%M:%S.%f+09:00"),
        lambda t: t.astimezone(timezone(timedelta(hours=-5))).strftime("%Y-%m-%dT%H:%M:%S.%f-05:00"),
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"),
        lambda t: t.strftime("%Y-%m-%dt%H:%M:%S.%fz"),
    ],
    ids=["Z", "nanoseconds", "+09:00", "-05:00", "+00:00", "lower-case"],
)
def test_added_after_accepts_any_rfc3339_form(as_, world, form):
    kr, url = as_("krcert"), objects_url(world, "shared", "manifest/")
    kr.post(objects_url(world, "shared"), [f.indicator(n) for n in range(40, 46)])
    entries = kr.get(url, {"limit": "1000"}).get_json()["objects"]
    middle = stix.parse_filter_timestamp(entries[len(entries) // 2]["date_added"])
    expected = [e["id"] for e in entries if stix.parse_filter_timestamp(e["date_added"]) > middle]
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=middle)
    got = kr.get(url, {"added_after": form(moment), "limit": "1000"})
    assert got.status_code == 200, got.get_data()
    assert [e["id"] for e in got.get_json()["objects"]] == expected and 0 < len(expected) < len(entries)


def test_added_after_is_exclusive_and_headers_echo_on_empty_pages(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    kr.post(url, [f.indicator(n) for n in range(20, 23)])
    page = kr.get(url)
    last = page.headers["X-TAXII-Date-Added-Last"]
    empty = kr.get(url, {"added_after": last})
    assert empty.status_code == 200 and empty.get_json().get("objects") is None
    assert empty.headers["X-TAXII-Date-Added-First"] == last == empty.headers["X-TAXII-Date-Added-Last"]
    manifest = kr.get(objects_url(world, "shared", "manifest/"), {"added_after": last})
    assert manifest.headers["X-TAXII-Date-Added-Last"] == last


def _pull_all(client, url, params, *, resend: bool):
    seen, pages = [], 0
    r = client.get(url, params)
    while True:
        body = r.get_json()
        seen += [o["id"] for o in body.get("objects", [])]
        pages += 1
        if not body.get("more"):
            return seen, pages
        assert body.get("next"), "more without next"
        nxt = {**(params if resend else {"limit": params["limit"]}), "next": body["next"]}
        r = client.get(url, nxt)
        assert r.status_code == 200, r.get_data()


@pytest.mark.parametrize("resend", [True, False])
def test_paging_with_and_without_resent_filters(as_, world, resend):
    kr, url = as_("krcert"), objects_url(world, "shared")
    objs = [f.indicator(n) for n in range(100, 137)]
    kr.post(url, objs)
    kr.post(url, [{**f.indicator(999), "type": "indicator"}])
    seen, pages = _pull_all(kr, url, {"limit": 5, "match[type]": "indicator"}, resend=resend)
    assert seen == [o["id"] for o in objs] + [f.indicator(999)["id"]]
    assert pages == 8


def test_next_survives_an_hour_and_ignores_other_partners_and_tampering(as_, world, monkeypatch):
    kr, url = as_("krcert"), objects_url(world, "shared")
    kr.post(url, [f.indicator(n) for n in range(200, 206)])
    first = kr.get(url, {"limit": 2})
    body = first.get_json()
    real_now = clock.now_us()
    monkeypatch.setattr(clock, "now_us", lambda: real_now + 3600 * 1_000_000)
    second = kr.get(url, {"limit": 2, "next": body["next"]})
    assert second.status_code == 200 and "X-CTI-Hub-Next-Ignored" not in second.headers
    assert ids_of(second) != ids_of(first)

    def ignored(client, target, params, reason):
        r = client.get(target, params)
        assert r.status_code == 200 and r.headers["X-CTI-Hub-Next-Ignored"] == reason
        fresh = client.get(target, {k: v for k, v in params.items() if k != "next"})
        assert r.get_data() == fresh.get_data()

    ignored(as_("cisa"), url, {"limit": 2, "next": body["next"]}, "partner")
    forged = body["next"][:-2] + ("AA" if not body["next"].endswith("AA") else "BB")
    ignored(kr, url, {"limit": 2, "next": forged}, "signature")
    ignored(kr, objects_url(world, "shared", "manifest/"), {"limit": 2, "next": body["next"]}, "endpoint")
    ignored(kr, url, {"limit": 2, "next": body["next"], "match[type]": "malware"}, "filters")
    for junk in ("garbage", "0", ""):
        ignored(kr, url, {"limit": 2, "next": junk}, "malformed")
    monkeypatch.setattr(clock, "now_us", lambda: real_now + 8 * 86_400 * 1_000_000)
    ignored(kr, url, {"limit": 2, "next": body["next"]}, "expired")


def test_limit_may_change_between_pages(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    objs = [f.indicator(n) for n in range(210, 220)]
    kr.post(url, objs)
    page = kr.get(url, {"limit": 3}).get_json()
    rest = kr.get(url, {"limit": 100, "next": page["next"]})
    assert "X-CTI-Hub-Next-Ignored" not in rest.headers
    assert [o["id"] for o in page["objects"]] + ids_of(rest) == [o["id"] for o in objs]


def test_empty_versions_and_manifest_are_empty_objects(as_, world):
    kr = as_("krcert")
    kr.post(objects_url(world, "shared"), [f.indicator(230)])
    last = kr.get(objects_url(world, "shared")).headers["X-TAXII-Date-Added-Last"]
    manifest = kr.get(objects_url(world, "shared", "manifest/"), {"added_after": last})
    assert manifest.status_code == 200 and manifest.get_json() == {}
    versions = kr.get(
        objects_url(world, "shared", f"objects/{f.indicator(230)['id']}/versions/"), {"added_after": last}
    )
    assert versions.status_code == 200 and versions.get_json() == {}
    assert kr.get(objects_url(world, "shared"), {"added_after": last}).get_json() == {"more": False}


def test_a_stix_bundle_is_taken_as_an_envelope(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    objs = [f.indicator(n) for n in (240, 241)]
    bundle = {"type": "bundle", "id": "bundle--0b9b0c43-6b1c-4b8e-9d5b-6f6e0c4a1d10", "objects": objs}
    r = kr.post(url, body=orjson.dumps(bundle))
    assert r.status_code == 202 and r.get_json()["success_count"] == 2
    stored = kr.get(url, {"match[id]": ",".join(o["id"] for o in objs)}).get_json()["objects"]
    assert sorted(stored, key=lambda o: o["id"]) == sorted(objs, key=lambda o: o["id"])


def test_limit_is_capped_by_the_server(make_app, world):
    app = make_app(max_page_size=3)
    kr = f.Client(app.test_client(), world["keys"]["krcert"])
    kr.post(objects_url(world, "shared"), [f.indicator(n) for n in range(300, 310)])
    body = kr.get(objects_url(world, "shared"), {"limit": 1000}).get_json()
    assert len(body["objects"]) == 3 and body["more"] is True and body["next"]


# --------------------------------------------------------------------- media types and bodies


@pytest.mark.parametrize(
    "accept",
    [
        "application/taxii+json;version=2.1",
        "application/taxii+json",
        "application/taxii+json; version=2.1",
        "application/taxii+json;version=2.1;charset=utf-8",
        "*/*",
        "application/json, application/taxii+json;q=0.9",
        "application/taxii+json;version=2.1,application/stix+json;version=2.1",
    ],
)
def test_lenient_accept(as_, accept):
    r = as_("krcert").get("/taxii2/", headers={"Accept": accept})
    assert r.status_code == 200 and r.headers["Content-Type"] == f.TAXII


@pytest.mark.parametrize("accept", ["application/taxii+json;version=2.0", "text/html", "application/xml"])
def test_unacceptable_accept_is_406(as_, accept):
    r = as_("krcert").get("/taxii2/", headers={"Accept": accept})
    assert r.status_code == 406 and r.get_json()["http_status"] == "406"


@pytest.mark.parametrize("ctype", ["application/taxii+json", "application/taxii+json; version=2.1; charset=utf-8"])
def test_lenient_content_type(as_, world, ctype):
    r = as_("krcert").post(objects_url(world, "shared"), [f.indicator(400)], headers={"Content-Type": ctype})
    assert r.status_code == 202


@pytest.mark.parametrize("ctype", ["application/json", "text/plain", "application/taxii+json;version=2.0"])
def test_wrong_content_type_is_415(as_, world, ctype):
    r = as_("krcert").post(objects_url(world, "shared"), [f.indicator(401)], headers={"Content-Type": ctype})
    assert r.status_code == 415 and r.get_json()["http_status"] == "415"


@pytest.mark.parametrize(
    "body,word",
    [
        (b"{not json", "JSON"),
        (b"[1, 2]", "envelope"),
        (b'{"type": "bundle", "objects": []}', "bundle"),
        (b'{"objects": []}', "empty"),
        (b'{"objects": {}}', "objects"),
    ],
)
def test_bad_bodies_are_422_naming_the_problem(as_, world, body, word):
    r = as_("krcert").post(objects_url(world, "shared"), body=body)
    assert r.status_code == 422, r.get_data()
    assert word in r.get_json()["description"]


def test_oversize_body_is_413(as_, world):
    objs = [f.indicator(n, description="x" * 1000) for n in range(500, 700)]
    r = as_("krcert").post(objects_url(world, "shared"), objs)
    assert r.status_code == 413 and r.get_json()["http_status"] == "413"


def test_chunked_upload_is_accepted(as_, world):
    kr = as_("krcert")
    data = orjson.dumps({"objects": [f.indicator(450)]})
    r = kr.http.post(
        objects_url(world, "shared"),
        input_stream=io.BytesIO(data),
        headers=kr.headers({"Content-Type": f.TAXII, "Transfer-Encoding": "chunked"}),
    )
    assert r.status_code == 202, r.get_data()


def test_missing_trailing_slash_redirects(as_):
    assert as_("krcert").get("/taxii2").status_code == 308


# --------------------------------------------------------------------- sharing rules on every endpoint


def _hidden_vs_absent(client, world, alias, hidden_id):
    absent_id = f"indicator--{uuid.uuid4()}"
    pairs = [
        (f"objects/{hidden_id}/", f"objects/{absent_id}/"),
        (f"objects/{hidden_id}/versions/", f"objects/{absent_id}/versions/"),
    ]
    for hidden, absent in pairs:
        a, b = client.get(objects_url(world, alias, hidden)), client.get(objects_url(world, alias, absent))
        assert a.status_code == b.status_code == 404
        assert a.get_json()["description"].replace(hidden_id, "X") == b.get_json()["description"].replace(
            absent_id, "X"
        )
        assert sorted(a.headers.keys()) == sorted(b.headers.keys())
    for suffix in ("objects/", "manifest/"):
        a = client.get(objects_url(world, alias, suffix), {"match[id]": hidden_id})
        b = client.get(objects_url(world, alias, suffix), {"match[id]": absent_id})
        assert a.status_code == b.status_code == 200 and a.get_json() == b.get_json()


def test_tlp_above_clearance_is_invisible_everywhere(as_, world):
    amber = f.indicator(600, markings=[AMBER])
    as_("krcert").post(objects_url(world, "shared"), [amber])
    assert ids_of(as_("singcert").get(objects_url(world, "shared"))) == [amber["id"]]
    assert ids_of(as_("mycert").get(objects_url(world, "shared"))) == []
    _hidden_vs_absent(as_("mycert"), world, "shared", amber["id"])


def test_red_needs_a_named_recipient(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    status = kr.post(url, [f.indicator(610, markings=[RED])]).get_json()
    assert status["failure_count"] == 1 and "name its recipients" in status["failures"][0]["message"]
    marking = f.sharing_marking(f"marking-definition--{uuid.uuid4()}", partners=["cisa"])
    red = f.indicator(611, markings=[RED, marking["id"]])
    status = kr.post(url, [red, marking]).get_json()
    assert status["success_count"] == 2, status
    assert red["id"] in ids_of(as_("cisa").get(url))
    assert red["id"] in ids_of(as_("krcert").get(url))  # the originator always sees its own
    assert red["id"] not in ids_of(as_("singcert").get(url))
    _hidden_vs_absent(as_("singcert"), world, "shared", red["id"])


def test_group_sharing_marking_and_exclusion(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    asean_only = f.sharing_marking(f"marking-definition--{uuid.uuid4()}", groups=["asean"], exclude=["mycert"])
    obj = f.indicator(620, markings=[GREEN, asean_only["id"]])
    kr.post(url, [asean_only, obj])
    assert obj["id"] in ids_of(as_("singcert").get(url))
    assert obj["id"] not in ids_of(as_("mycert").get(url))
    assert obj["id"] not in ids_of(as_("cisa").get(url))


def test_unknown_marking_is_refused(as_, world):
    obj = f.indicator(630, markings=[f"marking-definition--{uuid.uuid4()}"])
    status = as_("krcert").post(objects_url(world, "shared"), [obj]).get_json()
    assert "unknown marking" in status["failures"][0]["message"]


def test_marking_cannot_be_smuggled_or_changed(as_, world):
    kr, url = as_("krcert"), objects_url(world, "shared")
    fake_tlp = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": GREEN,
        "created": f.CLOCK,
        "name": "TLP:GREEN",
        "extensions": {
            "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
                "extension_type": "property-extension",
                "tlp_2_0": "clear",
            }
        },
    }
    assert kr.post(url, [fake_tlp]).get_json()["failure_count"] == 1
    marking = f.sharing_marking(f"marking-definition--{uuid.uuid4()}", partners=["cisa"])
    kr.post(url, [marking])
    widened = f.sharing_marking(marking["id"], partners=["cisa", "singcert"])
    status = as_("krcert").post(url, [widened]).get_json()
    assert status["failure_count"] == 1


def test_collection_rules_max_tlp_and_types(as_, world):
    status = as_("krcert").post(objects_url(world, "rokus"), [f.indicator(640, markings=[RED])]).get_json()
    assert "above collection maximum" in status["failures"][0]["message"]
    malware = {
        "type": "malware",
        "spec_version": "2.1",
        "id": f"malware--{uuid.uuid4()}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "name": "MagicRAT",
        "is_family": True,
    }
    status = as_("krcert").post(objects_url(world, "ind"), [malware]).get_json()
    assert "not allowed" in status["failures"][0]["message"]


def test_write_permissions(as_, world):
    assert as_("singcert").post(objects_url(world, "ind"), [f.indicator(650)]).status_code == 403
    assert as_("singcert").post(objects_url(world, "rokus"), [f.indicator(651)]).status_code == 404
    assert as_("singcert").get(objects_url(world, "wo")).status_code == 403
    assert as_("singcert").post(objects_url(world, "wo"), [f.indicator(652)]).status_code == 202


def test_only_the_originator_versions_or_deletes(as_, world):
    url = objects_url(world, "shared")
    obj = f.indicator(660)
    as_("krcert").post(url, [obj])
    newer = {**obj, "modified": "2024-06-01T00:00:00.000Z", "revoked": True}
    status = as_("cisa").post(url, [newer]).get_json()
    assert "only the originator" in status["failures"][0]["message"]
    assert as_("cisa").delete(objects_url(world, "shared", f"objects/{obj['id']}/")).status_code == 403
    forged = f.indicator(661, created_by=f"identity--{uuid.uuid5(HUB_NAMESPACE, 'krcert')}")
    status = as_("cisa").post(url, [forged]).get_json()
    assert "names another partner" in status["failures"][0]["message"]
    r = as_("krcert").delete(objects_url(world, "shared", f"objects/{obj['id']}/"))
    assert r.status_code == 200 and r.headers["Content-Type"] == f.TAXII
    assert as_("krcert").get(objects_url(world, "shared", f"objects/{obj['id']}/")).status_code == 404


def test_versions_are_listed_in_the_order_they_were_added(as_, world):
    """Like every TAXII list, by date_added: a version published late (an older one) comes last."""
    kr, url = as_("krcert"), objects_url(world, "shared")
    v1 = f.indicator(12, modified="2024-05-01T00:00:00.000Z")
    v2 = {**v1, "modified": "2024-05-02T00:00:00.000Z"}
    for version in (v2, v1):
        assert kr.post(url, [version]).get_json()["success_count"] == 1
    versions = kr.get(objects_url(world, "shared", f"objects/{v1['id']}/versions/")).get_json()["versions"]
    objects = kr.get(objects_url(world, "shared", f"objects/{v1['id']}/"), {"match[version]": "all"}).get_json()
    assert versions == [o["modified"] for o in objects["objects"]] == [v2["modified"], v1["modified"]]


def test_delete_single_version(as_, world):
    v1, v2, v3, *_ = _publish_versions(as_, world)
    kr = as_("krcert")
    r = kr.delete(objects_url(world, "shared", f"objects/{v1['id']}/"), {"match[version]": v2["modified"]})
    assert r.status_code == 200
    versions = kr.get(objects_url(world, "shared", f"objects/{v1['id']}/versions/")).get_json()["versions"]
    assert versions == [v1["modified"], v3["modified"]]


# --------------------------------------------------------------------- authentication


def _basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode(), "Accept": f.TAXII}


def test_basic_auth_with_slug_or_key_id_and_token_scheme(app, hub, world):
    secret = world["keys"]["krcert"]
    http = app.test_client()
    assert http.get("/taxii2/", headers=_basic("krcert", secret)).status_code == 200
    assert http.get("/taxii2/", headers=_basic("cisa", secret)).status_code == 401
    assert http.get("/taxii2/", headers={"Authorization": f"Token {secret}", "Accept": f.TAXII}).status_code == 200
    with hub.session() as s:
        from hub import models as m

        key_id = s.query(m.ApiKey.key_id).join(m.Partner).filter(m.Partner.slug == "krcert").scalar()
    assert http.get("/taxii2/", headers=_basic(key_id, secret)).status_code == 200


def test_revoked_expired_suspended_and_cidr(app, hub, world):
    http = app.test_client()
    revoked = f.key_for(hub, "cisa")
    with hub.session() as s:
        from hub import models as m

        key_id = s.query(m.ApiKey.key_id).order_by(m.ApiKey.id.desc()).limit(1).scalar()
        accounts.revoke_key(s, key_id)
    assert http.get("/taxii2/", headers=_basic("cisa", revoked)).status_code == 401
    elsewhere = f.key_for(hub, "cisa", cidrs="10.9.0.0/16")
    assert http.get("/taxii2/", headers=_basic("cisa", elsewhere)).status_code == 401
    local = f.key_for(hub, "cisa", cidrs="127.0.0.0/8")
    assert http.get("/taxii2/", headers=_basic("cisa", local)).status_code == 200
    with pytest.raises(Exception):
        f.key_for(hub, "thaicert", expires_days=0)
    suspended = f.key_for(hub, "thaicert")
    assert http.get("/taxii2/", headers=_basic("thaicert", suspended)).status_code == 401


def test_read_only_key_cannot_publish(app, hub, world):
    secret = f.key_for(hub, "krcert", read_only=True)
    client = f.Client(app.test_client(), secret)
    collection = client.get(f"/dprk/collections/{world['ids']['shared']}/").get_json()
    assert collection["can_write"] is False
    assert client.post(objects_url(world, "shared"), [f.indicator(700)]).status_code == 403


def test_failed_logins_are_rate_limited_and_audited(make_app, world):
    app = make_app(login_failure_limit=3)
    http = app.test_client()
    codes = [http.get("/taxii2/", headers=_basic("krcert", "wrong")).status_code for _ in range(5)]
    assert codes == [401, 401, 401, 429, 429]
    r = http.get("/taxii2/", headers=_basic("krcert", "wrong"))
    assert int(r.headers["Retry-After"]) > 0 and r.get_json()["http_status"] == "429"
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        from hub import models as m

        assert s.query(m.AuditEvent).filter(m.AuditEvent.action == "login.failed").count() == 3
