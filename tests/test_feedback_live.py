"""Feedback over the real server (gunicorn) with taxii2-client, on the shipped demo world and both engines.

A partner's sighting of another's indicator reaches the originator in full and every other recipient only
as counts; a sighting of a hidden id is answered exactly like one of an absent id; three distinct partners'
false-positive reports withdraw the indicator from every recipient's blocklists (community's
``false_positive_threshold: 3``), and the originator reads why.
"""

from __future__ import annotations

import uuid

import pytest
import requests
from taxii2client.v21 import Collection, as_pages

from hub import ingest, sharing
from tests import factories as f

pytestmark = pytest.mark.slow

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
ROK_US = sharing.group_marking_id("rok-us")
READERS = ("krcert", "cisa", "singcert", "mmcert", "vncert")


def identity(slug: str) -> str:
    return sharing.partner_identity(slug)


def sighting(n: int, target: str, reporter: str) -> dict:
    return {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid5(uuid.NAMESPACE_OID, f'live/{n}')}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "created_by_ref": identity(reporter),
        "sighting_of_ref": target,
        "where_sighted_refs": [identity(reporter)],
        "count": 5,
        "first_seen": "2024-06-01T08:00:00Z",
        "last_seen": "2024-06-02T08:00:00Z",
        "object_marking_refs": [GREEN],
    }


def false_positive(n: int, target: str) -> dict:
    return {
        "type": "opinion",
        "spec_version": "2.1",
        "id": f"opinion--{uuid.uuid5(uuid.NAMESPACE_OID, f'live/{n}')}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "opinion": "strongly-disagree",
        "explanation": "our resolver; not malicious",
        "object_refs": [target],
        "object_marking_refs": [GREEN],
    }


@pytest.fixture
def world(request):
    base, keys, ids = request.getfixturevalue("live")
    hub = request.getfixturevalue("hub")
    for slug in ("mmcert", "vncert"):
        keys[slug] = f.key_for(hub, slug)
    return base, keys, ids, hub


def publish(hub, alias_id: str, slug: str, objs: list[dict]) -> None:
    with hub.session(write=False) as s:
        pk = hub.snapshot(s).by_slug[slug]
    result = ingest.ingest_envelope(hub, pk, alias_id, objs)
    assert not result.failures, result.failures


def collection(base: str, ids: dict, alias: str, keys: dict, slug: str) -> Collection:
    return Collection(f"{base}/dprk/collections/{ids[alias]}/", user=slug, password=keys[slug])


def everything(coll: Collection) -> list[dict]:
    return [o for page in as_pages(coll.get_objects, per_request=50) for o in page.get("objects", [])]


def blocklist(base: str, ids: dict, keys: dict, slug: str, **params) -> list[str]:
    r = requests.get(f"{base}/feeds/dprk/{ids['community']}/ip.txt", auth=(slug, keys[slug]), params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.text.split()


def test_feedback_reaches_the_originator_in_full_and_others_as_counts(world):
    base, keys, ids, hub = world
    # A public address on no warninglist, so that community's blocklist lists it.
    ind = f.indicator(1, markings=[GREEN], pattern="[ipv4-addr:value = '45.142.212.61']")
    hidden = f.indicator(2, markings=[ROK_US])
    publish(hub, ids["community"], "krcert", [ind])
    publish(hub, ids["regional"], "krcert", [hidden])

    seen = sighting(1, ind["id"], "cisa")
    with collection(base, ids, "feedback", keys, "cisa") as fb:
        status = fb.add_objects({"objects": [seen]})
        assert (status.success_count, status.failure_count) == (1, 0)
    with collection(base, ids, "feedback", keys, "krcert") as fb:
        assert everything(fb) == [seen]  # in full, to the originator
    for slug in ("singcert", "mmcert", "vncert"):
        with collection(base, ids, "feedback", keys, slug) as fb:
            assert everything(fb) == []
        with collection(base, ids, "community", keys, slug) as community:
            (agg,) = [o for o in everything(community) if o["type"] == "sighting"]
        assert agg["sighting_of_ref"] == ind["id"] and (agg["count"], agg["x_cti_hub_false_positives"]) == (5, 0)
        assert "where_sighted_refs" not in agg and agg["created_by_ref"] != identity("cisa")

    # A sighting of a hidden id (ROK-US only: singcert is not in it) and of an absent one: the same answer.
    answers = []
    for n, target in ((2, hidden["id"]), (3, f"indicator--{uuid.uuid4()}")):
        r = requests.post(
            f"{base}/dprk/collections/{ids['feedback']}/objects/",
            json={"objects": [sighting(n, target, "singcert")]},
            auth=("singcert", keys["singcert"]),
            headers={"Content-Type": "application/taxii+json;version=2.1", "Accept": "application/taxii+json"},
            timeout=30,
        )
        body = r.json()
        answers.append(
            (
                r.status_code,
                sorted(h for h in r.headers if h.lower() not in ("date", "x-request-id", "content-length")),
                body["success_count"],
                body["failure_count"],
                [x["message"].replace(target, "X") for x in body["failures"]],
            )
        )
    assert answers[0] == answers[1] and answers[0][0] == 202, answers

    # Three distinct partners report it as a false positive: out of every recipient's blocklist.
    value = "45.142.212.61"
    assert all(value in blocklist(base, ids, keys, slug) for slug in READERS)
    for n, slug in enumerate(("cisa", "singcert", "mmcert")):
        with collection(base, ids, "feedback", keys, slug) as fb:
            assert fb.add_objects({"objects": [false_positive(10 + n, ind["id"])]}).success_count == 1
    for slug in READERS:
        assert value not in blocklist(base, ids, keys, slug), slug
        assert value in blocklist(base, ids, keys, slug, include="withdrawn"), slug
    with collection(base, ids, "feedback", keys, "krcert") as fb:
        notes = [o for o in everything(fb) if o["type"] == "note"]
        reports = [o for o in everything(fb) if o["type"] == "opinion"]
    assert len(reports) == 3 and len(notes) == 1
    assert "false positive by 3 partners" in notes[0]["content"] and "community" in notes[0]["content"]
    with collection(base, ids, "community", keys, "vncert") as community:
        aggs = [o for o in everything(community) if o["type"] == "sighting"]
    assert [(a["count"], a["x_cti_hub_false_positives"]) for a in aggs] == [(5, 3)]
