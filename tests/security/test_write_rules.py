"""A partner tries to write where it may not, to speak for another partner, or to change others' objects."""

from __future__ import annotations

import uuid

import orjson
from sqlalchemy import select

from hub import models as m
from hub import reference, stix
from hub.ids import HUB_NAMESPACE, SHARING_EXTENSION_ID
from hub.policy import TLP
from tests import factories as f
from tests.security.conftest import AMBER, GREEN, ONLY_CISA, RED

TLP2_AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def failures(status: dict) -> dict[str, str]:
    return {x["id"]: x["message"] for x in status.get("failures", [])}


def stored_raw(world, stix_id: str) -> list[dict]:  # type: ignore[no-untyped-def]
    with world.hub.session(write=False) as s:
        return [
            orjson.loads(r) for r in s.scalars(select(m.ObjectVersion.raw).where(m.ObjectVersion.stix_id == stix_id))
        ]


def test_writing_to_a_collection_it_only_reads_is_forbidden(world):
    r = world.client("singcert").post(world.url("ind"), [f.indicator(940)])
    assert r.status_code == 403
    assert stored_raw(world, f.indicator(940)["id"]) == []


def test_writing_to_the_reference_collection_is_forbidden(world):
    fake = {**f.indicator(941)}
    r = world.client("krcert").post(world.url("reference"), [fake])
    assert r.status_code == 403 and stored_raw(world, fake["id"]) == []


def test_read_only_key_cannot_post(world):
    key = f.key_for(world.hub, "krcert", read_only=True)
    client = f.Client(world.app.test_client(), key)
    r = client.post(world.url("shared"), [f.indicator(942)])
    assert r.status_code == 403 and stored_raw(world, f.indicator(942)["id"]) == []
    described = client.get(world.url("shared", "")).get_json()
    assert described["can_write"] is False and described["can_read"] is True


def test_forged_created_by_ref_is_refused(world):
    krcert_identity = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'krcert')}"
    hub_identity = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'hub')}"
    objs = [f.indicator(943, created_by=krcert_identity), f.indicator(944, created_by=hub_identity)]
    status = world.client("singcert").post(world.url("shared"), objs).get_json()
    assert status["failure_count"] == 2
    assert "names another partner" in failures(status)[objs[0]["id"]]
    assert all(stored_raw(world, o["id"]) == [] for o in objs)


def test_own_created_by_ref_is_accepted(world):
    mine = f.indicator(945, created_by=f"identity--{uuid.uuid5(HUB_NAMESPACE, 'singcert')}")
    assert world.client("singcert").post(world.url("shared"), [mine]).get_json()["success_count"] == 1


def test_duplicate_json_keys_cannot_smuggle_a_forged_creator(world):
    """orjson keeps the last duplicate key; what is checked is exactly what is stored and served."""
    own = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'singcert')}"
    other = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'krcert')}"
    obj = f.indicator(946)
    body = orjson.dumps({"objects": [obj]}).decode()
    attacker = world.client("singcert")
    refused = body.replace(
        '"type":"indicator"', f'"created_by_ref":"{own}","created_by_ref":"{other}","type":"indicator"'
    )
    status = attacker.post(world.url("shared"), body=refused.encode()).get_json()
    assert status["failure_count"] == 1 and stored_raw(world, obj["id"]) == []
    accepted = body.replace(
        '"type":"indicator"', f'"created_by_ref":"{other}","created_by_ref":"{own}","type":"indicator"'
    )
    assert attacker.post(world.url("shared"), body=accepted.encode()).get_json()["success_count"] == 1
    served = attacker.get(world.url("shared", f"objects/{obj['id']}/")).get_data(as_text=True)
    assert other not in served and served.count('"created_by_ref"') == 1


def test_new_version_of_another_partners_object_is_refused(world):
    forged = {**world.visible, "modified": "2024-06-01T00:00:00.000Z", "name": "defaced"}
    status = world.client("singcert").post(world.url("shared"), [forged]).get_json()
    assert status["failure_count"] == 1 and "originator" in failures(status)[forged["id"]]
    assert [o["name"] for o in stored_raw(world, forged["id"])] == [world.visible["name"]]


def test_revoking_another_partners_object_is_refused(world):
    revoked = {**world.visible, "modified": "2024-06-01T00:00:00.000Z", "revoked": True}
    status = world.client("cisa").post(world.url("shared"), [revoked]).get_json()
    assert status["failure_count"] == 1
    assert all(not o.get("revoked") for o in stored_raw(world, revoked["id"]))


def test_same_version_different_content_cannot_replace_an_object(world):
    replaced = {**world.visible, "name": "defaced"}
    status = world.client("singcert").post(world.url("shared"), [replaced]).get_json()
    assert status["failure_count"] == 1
    assert [o["name"] for o in stored_raw(world, replaced["id"])] == [world.visible["name"]]


def test_versions_in_another_collection_are_refused_too(world):
    """Ids are hub-wide: an object cannot be hijacked by publishing it in a collection its owner does not use."""
    forged = {**world.visible, "modified": "2024-06-01T00:00:00.000Z", "name": "defaced"}
    own = world.new_collection("singonly", readers=["partner:singcert"], writers=["partner:singcert"])
    status = world.client("singcert").post(f"/dprk/collections/{own}/objects/", [forged]).get_json()
    assert status["failure_count"] == 1


def test_deleting_another_partners_object_is_forbidden(world):
    mine = f.indicator(953, markings=[GREEN])
    assert world.client("krcert").post(world.url("shared"), [mine]).get_json()["success_count"] == 1
    r = world.client("singcert").delete(world.url("shared", f"objects/{mine['id']}/"))
    assert r.status_code == 403
    assert len(stored_raw(world, mine["id"])) == 1
    assert world.client("krcert").delete(world.url("shared", f"objects/{mine['id']}/")).status_code == 200
    assert stored_raw(world, mine["id"]) == []


def test_type_and_tlp_limits_of_a_collection_hold(world):
    kr = world.client("krcert")
    malware = {
        "type": "malware",
        "spec_version": "2.1",
        "id": f"malware--{uuid.uuid4()}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "name": "AppleJeus",
        "is_family": True,
    }
    assert kr.post(world.url("ind"), [malware]).get_json()["failure_count"] == 1
    red = f.indicator(947, markings=[RED, ONLY_CISA])
    assert kr.post(world.url("rokus"), [red]).get_json()["failure_count"] == 1
    unnamed_red = f.indicator(948, markings=[RED])
    assert kr.post(world.url("shared"), [unnamed_red]).get_json()["failure_count"] == 1


def test_a_tlp_marking_definition_cannot_be_overwritten(world):
    for marking_id in (TLP2_AMBER, AMBER):
        fake = {
            "type": "marking-definition",
            "spec_version": "2.1",
            "id": marking_id,
            "created": f.CLOCK,
            "name": "TLP:CLEAR",
            "definition_type": "tlp",
            "definition": {"tlp": "white"},
        }
        status = world.client("singcert").post(world.url("shared"), [fake]).get_json()
        assert status["failure_count"] == 1, marking_id
    with world.hub.session(write=False) as s:
        snap = world.hub.snapshot(s)
        assert stix.marking_tlp(AMBER) == TLP.AMBER
        stored = snap.markings.get(TLP2_AMBER)
        assert stored is None or orjson.loads(stored.raw)["name"] == "TLP:AMBER"
    seen = {o["id"] for o in world.client("mycert").get(world.url("shared")).get_json()["objects"]}
    assert world.hidden["id"] not in seen


def test_a_sharing_marking_cannot_be_redefined(world):
    """Smuggling: the same id with different content must neither be stored nor change who reads."""
    widened = f.sharing_marking(ONLY_CISA, partners=["cisa", "singcert"])
    ride = f.indicator(949, markings=[AMBER, ONLY_CISA])
    status = world.client("singcert").post(world.url("shared"), [widened, ride]).get_json()
    assert failures(status).get(ONLY_CISA, "").endswith("markings never change")
    attacker = world.client("singcert")
    assert attacker.get(world.url("shared", f"objects/{world.hidden['id']}/")).status_code == 404
    assert world.client("mycert").get(world.url("shared", f"objects/{ride['id']}/")).status_code == 404
    # singcert is not admitted by the marking, so it cannot see it: the rider names an unknown marking.
    assert "unknown marking" in failures(status).get(ride["id"], "")
    assert world.client("cisa").get(world.url("shared", f"objects/{ride['id']}/")).status_code == 404


def test_a_group_marking_cannot_be_redefined(world):
    group_marking = f"marking-definition--{uuid.uuid5(HUB_NAMESPACE, 'group:rokus')}"
    widened = reference.group_marking(group_marking, "rokus", "ROKUS")
    widened["extensions"][SHARING_EXTENSION_ID]["share_with"]["partners"] = ["singcert"]
    status = world.client("singcert").post(world.url("shared"), [widened]).get_json()
    assert status["failure_count"] == 1
    secret = f.indicator(950, markings=[GREEN, group_marking])
    assert world.client("krcert").post(world.url("shared"), [secret]).get_json()["success_count"] == 1
    assert world.client("singcert").get(world.url("shared", f"objects/{secret['id']}/")).status_code == 404


def test_objects_marked_with_a_refused_marking_are_refused(world):
    """A marking refused in an envelope cannot be used by the objects riding along with it."""
    bad_id = f"marking-definition--{uuid.uuid4()}"
    bad = f.sharing_marking(bad_id, partners=["nobody-such"])
    rider = f.indicator(951, markings=[GREEN, bad_id])
    status = world.client("singcert").post(world.url("shared"), [bad, rider]).get_json()
    assert status["success_count"] == 0 and set(failures(status)) == {bad_id, rider["id"]}


def test_unknown_markings_are_refused_and_never_served(world):
    unknown = f.indicator(952, markings=[GREEN, f"marking-definition--{uuid.uuid4()}"])
    assert world.client("krcert").post(world.url("shared"), [unknown]).get_json()["failure_count"] == 1
    for slug in ("cisa", "singcert", "mycert"):
        assert world.client(slug).get(world.url("shared", f"objects/{unknown['id']}/")).status_code == 404


def test_a_marking_hidden_from_the_publisher_is_as_unknown_as_an_absent_one(world):
    hidden_marking = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'rokus-only-marking')}"
    posted = world.client("krcert").post(world.url("rokus"), [f.sharing_marking(hidden_marking, partners=["cisa"])])
    assert posted.get_json()["success_count"] == 1
    assert world.client("singcert").get(world.url("shared", f"objects/{hidden_marking}/")).status_code == 404
    absent = f"marking-definition--{uuid.uuid4()}"
    attacker = world.client("singcert")
    with_hidden = attacker.post(world.url("shared"), [f.indicator(954, markings=[GREEN, hidden_marking])]).get_json()
    with_absent = attacker.post(world.url("shared"), [f.indicator(955, markings=[GREEN, absent])]).get_json()
    assert with_hidden["success_count"] == with_absent["success_count"]
