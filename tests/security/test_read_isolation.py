"""A partner with a valid key tries to read, or learn of, objects and collections the rules hide from it.

Every response about a hidden object must be byte-for-byte the response about an id that was never
stored: same status, same header names and values (``Date`` and ``X-Request-ID`` aside), same body once
the id is swapped.
"""

from __future__ import annotations

import uuid

import pytest

from tests import factories as f
from tests.security.probes import ENDPOINTS, absent_like, assert_indistinguishable, headers_of


@pytest.mark.parametrize("which", ["hidden", "red"])
@pytest.mark.parametrize(("name", "endpoint"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_hidden_object_reads_like_an_absent_one(world, which, name, endpoint):
    attacker = world.client("singcert")
    hidden_id = getattr(world, which)["id"]
    absent_id = absent_like(hidden_id)
    path, params = endpoint(world, hidden_id)
    hidden = attacker.get(path, params)
    path2, params2 = endpoint(world, absent_id)
    absent = attacker.get(path2, params2)
    assert hidden.status_code in (200, 404)
    assert hidden_id.encode() not in hidden.get_data() or hidden.status_code == 404
    assert_indistinguishable(hidden, absent, hidden_id, absent_id)


def test_the_reader_it_is_meant_for_does_see_it(world):
    """Guard against a vacuous suite: cisa is named by the sharing marking and sees both objects."""
    cisa = world.client("cisa")
    for obj in (world.hidden, world.red):
        r = cisa.get(world.url("shared", f"objects/{obj['id']}/"))
        assert r.status_code == 200 and r.get_json()["objects"] == [obj]


def test_listing_manifest_and_type_filter_leave_hidden_objects_out(world):
    attacker = world.client("singcert")
    for params in (
        {},
        {"match[type]": "indicator"},
        {"match[version]": "all"},
        {"match[id]": f"{world.visible['id']},{world.hidden['id']},{world.red['id']}"},
        {"added_after": "2000-01-01T00:00:00Z"},
    ):
        listed = attacker.get(world.url("shared"), params).get_json()
        manifest = attacker.get(world.url("shared", "manifest/"), params).get_json()
        seen = {o["id"] for o in listed.get("objects", [])} | {o["id"] for o in manifest.get("objects", [])}
        assert world.visible["id"] in seen
        assert not seen & {world.hidden["id"], world.red["id"]}, params
        assert listed["more"] is False and "next" not in listed


def test_date_added_headers_do_not_count_hidden_objects(world):
    """The X-TAXII-Date-Added headers bound what was delivered, not what exists."""
    attacker = world.client("singcert")
    both = f"{world.visible['id']},{world.hidden['id']},{world.red['id']}"
    r = attacker.get(world.url("shared"), {"match[id]": both})
    delivered = attacker.get(world.url("shared", "manifest/"), {"match[id]": world.visible["id"]}).get_json()
    assert r.headers["X-TAXII-Date-Added-First"] == delivered["objects"][0]["date_added"]
    assert r.headers["X-TAXII-Date-Added-Last"] == delivered["objects"][0]["date_added"]


def test_lower_clearance_sees_neither_amber_nor_red(world):
    mycert = world.client("mycert")
    seen = {o["id"] for o in mycert.get(world.url("shared")).get_json()["objects"]}
    assert world.visible["id"] in seen
    assert not seen & {world.hidden["id"], world.red["id"]}


# --------------------------------------------------------------------- status resources


def test_another_partners_status_reads_like_a_random_one(world):
    status = world.client("krcert").post(world.url("shared"), [f.indicator(903)]).get_json()
    attacker = world.client("singcert")
    absent = str(uuid.uuid4())
    theirs = attacker.get(f"/dprk/status/{status['id']}/")
    nobody = attacker.get(f"/dprk/status/{absent}/")
    assert theirs.status_code == 404
    assert_indistinguishable(theirs, nobody, status["id"], absent)
    assert world.client("krcert").get(f"/dprk/status/{status['id']}/").status_code == 200


def test_status_under_another_api_root_is_not_found(world):
    status = world.client("krcert").post(world.url("shared"), [f.indicator(904)]).get_json()
    r = world.client("krcert").get(f"/elsewhere/status/{status['id']}/")
    assert r.status_code == 404 and status["id"] not in r.get_data(as_text=True).replace(
        f"/elsewhere/status/{status['id']}/", ""
    )


# --------------------------------------------------------------------- collections


COLLECTION_PATHS = ["", "objects/", "manifest/", "objects/{obj}/", "objects/{obj}/versions/"]


@pytest.mark.parametrize("suffix", COLLECTION_PATHS)
@pytest.mark.parametrize("by", ["id", "alias"])
def test_unreadable_collection_reads_like_an_absent_one(world, suffix, by):
    attacker = world.client("singcert")
    obj = world.visible["id"]
    if by == "id":
        hidden_ref, absent_ref = world.ids["rokus"], str(uuid.uuid4())
    else:
        hidden_ref, absent_ref = "rokus", "rokux"
    hidden = attacker.get(f"/dprk/collections/{hidden_ref}/" + suffix.format(obj=obj))
    absent = attacker.get(f"/dprk/collections/{absent_ref}/" + suffix.format(obj=obj))
    assert hidden.status_code == 404
    assert_indistinguishable(hidden, absent, hidden_ref, absent_ref)
    assert world.client("cisa").get(f"/dprk/collections/{hidden_ref}/" + suffix.format(obj=obj)).status_code in (
        200,
        404,
    )


def test_unreadable_collection_is_not_listed_and_not_counted(world):
    attacker = world.client("singcert")
    listed = attacker.get("/dprk/collections/").get_json()["collections"]
    assert world.ids["rokus"] not in {c["id"] for c in listed}
    assert "rokus" not in attacker.get("/dprk/collections/").get_data(as_text=True)
    assert world.ids["rokus"] in {
        c["id"] for c in world.client("cisa").get("/dprk/collections/").get_json()["collections"]
    }


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_writing_or_deleting_in_an_unreadable_collection_looks_absent(world, method):
    attacker = world.client("singcert")
    hidden_ref, absent_ref = world.ids["rokus"], str(uuid.uuid4())
    obj = f.indicator(905)
    if method == "POST":
        hidden = attacker.post(f"/dprk/collections/{hidden_ref}/objects/", [obj])
        absent = attacker.post(f"/dprk/collections/{absent_ref}/objects/", [obj])
    else:
        hidden = attacker.delete(f"/dprk/collections/{hidden_ref}/objects/{obj['id']}/")
        absent = attacker.delete(f"/dprk/collections/{absent_ref}/objects/{obj['id']}/")
    assert hidden.status_code == 404
    assert_indistinguishable(hidden, absent, hidden_ref, absent_ref)


def test_collection_of_another_api_root_is_not_reachable_through_this_one(world):
    from hub.policy import TLP

    with world.hub.session() as s:
        root = f.add_root(s, "other")
        other = f.add_collection(s, root, "shared", max_tlp=TLP.RED).uuid
    kr = world.client("krcert")
    assert kr.post(f"/other/collections/{other}/objects/", [f.indicator(906)]).status_code == 202
    cross = kr.get(f"/dprk/collections/{other}/objects/")
    assert cross.status_code == 404
    assert kr.get(f"/other/collections/{other}/objects/").status_code == 200


# --------------------------------------------------------------------- delete of a hidden object


def test_deleting_a_hidden_object_reads_like_deleting_an_absent_one(world):
    attacker = world.client("singcert")
    hidden_id = world.hidden["id"]
    absent_id = absent_like(hidden_id)
    hidden = attacker.delete(world.url("shared", f"objects/{hidden_id}/"))
    absent = attacker.delete(world.url("shared", f"objects/{absent_id}/"))
    assert hidden.status_code == 404
    assert_indistinguishable(hidden, absent, hidden_id, absent_id)
    assert world.client("cisa").get(world.url("shared", f"objects/{hidden_id}/")).status_code == 200


def test_a_version_of_a_hidden_object_looks_like_a_new_id_to_its_poster(world):
    """No existence oracle on the write path: the post is the poster's quarantined copy, nobody else's."""
    attacker = world.client("singcert")
    forged = {**world.hidden, "modified": "2024-06-01T00:00:00.000Z", "object_marking_refs": [GREEN_TLP1]}
    fresh = {**forged, "id": f"indicator--{uuid.uuid4()}"}
    statuses = [attacker.post(world.url("shared"), [obj]).get_json() for obj in (forged, fresh)]
    assert [(s["success_count"], s["failure_count"]) for s in statuses] == [(1, 0), (1, 0)]
    mine = attacker.get(world.url("shared", f"objects/{forged['id']}/")).get_json()["objects"]
    assert mine == [forged]
    assert world.client("mycert").get(world.url("shared", f"objects/{world.hidden['id']}/")).status_code == 404
    got = world.client("cisa").get(world.url("shared", f"objects/{world.hidden['id']}/")).get_json()["objects"]
    assert got == [world.hidden]


GREEN_TLP1 = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"


# --------------------------------------------------------------------- a visible object with a hidden version


def test_hidden_versions_of_a_visible_object_stay_hidden(world):
    v1 = f.indicator(
        907,
        markings=["marking-definition--f88d31f6-486f-44da-b317-01333bde0b82", world.red["object_marking_refs"][1]],
        modified="2024-05-01T00:00:00.000Z",
    )
    v2 = {**v1, "modified": "2024-05-02T00:00:00.000Z", "object_marking_refs": [GREEN_TLP1]}
    assert world.client("krcert").post(world.url("shared"), [v1, v2]).get_json()["success_count"] == 2
    attacker = world.client("singcert")
    base = world.url("shared", f"objects/{v1['id']}/")
    assert attacker.get(base + "versions/").get_json()["versions"] == [v2["modified"]]
    for version in ("first", "last", "all"):
        got = attacker.get(base, {"match[version]": version}).get_json()["objects"]
        assert got == [v2], version
    manifest = attacker.get(world.url("shared", "manifest/"), {"match[id]": v1["id"], "match[version]": "all"})
    assert [o["version"] for o in manifest.get_json()["objects"]] == [v2["modified"]]
    at_hidden = attacker.get(base, {"match[version]": v1["modified"]})
    at_never = attacker.get(base, {"match[version]": "2024-04-30T00:00:00.000Z"})
    assert at_hidden.status_code == at_never.status_code == 200
    assert headers_of(at_hidden) == headers_of(at_never) and at_hidden.get_data() == at_never.get_data()
    assert world.client("cisa").get(base + "versions/").get_json()["versions"] == [v1["modified"], v2["modified"]]
