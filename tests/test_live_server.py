"""The real server (`cti-hub serve`, gunicorn) driven by taxii2-client and by concurrent raw HTTP clients."""

from __future__ import annotations

import threading
import uuid

import pytest
import requests
from taxii2client.v21 import ApiRoot, Collection, Server, as_pages

from tests import factories as f

pytestmark = pytest.mark.slow

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"


def test_taxii2_client_publish_page_manifest_versions_delete_status(live):
    base, keys, ids = live
    server = Server(f"{base}/taxii2/", user="krcert", password=keys["krcert"])
    assert server.api_roots[0].url == f"{base}/dprk/"
    root = ApiRoot(f"{base}/dprk/", user="krcert", password=keys["krcert"])
    assert {c.alias for c in root.collections} >= {"community", "regional", "reference"}
    coll = Collection(f"{base}/dprk/collections/{ids['community']}/", user="krcert", password=keys["krcert"])
    objs = [f.indicator(n, markings=[GREEN]) for n in range(2500, 2540)]
    status = coll.add_objects({"objects": objs}, wait_for_completion=True)
    assert status.status == "complete" and status.success_count == 40
    again = root.get_status(status.id)
    assert again.success_count == 40
    pulled = []
    for envelope in as_pages(coll.get_objects, per_request=7):
        pulled += [o["id"] for o in envelope.get("objects", [])]
    assert pulled == [o["id"] for o in objs]
    manifest = []
    for page in as_pages(coll.get_manifest, per_request=9):
        manifest += page.get("objects", [])
    assert [m["id"] for m in manifest] == pulled
    newer = {**objs[0], "modified": "2024-06-01T00:00:00.000Z", "revoked": True}
    coll.add_objects({"objects": [newer]}, wait_for_completion=True)
    assert coll.object_versions(objs[0]["id"])["versions"] == [objs[0]["modified"], newer["modified"]]
    assert coll.get_object(objs[0]["id"])["objects"] == [newer]
    coll.delete_object(objs[1]["id"])
    with pytest.raises(requests.HTTPError) as caught:
        coll.get_object(objs[1]["id"])
    assert caught.value.response.status_code == 404


def test_token_and_basic_with_key_id_on_the_live_server(live):
    base, keys, ids = live
    url = f"{base}/dprk/collections/{ids['community']}/objects/"
    accept = {"Accept": "application/taxii+json"}
    assert requests.get(url, headers={**accept, "Authorization": f"Token {keys['cisa']}"}).status_code == 200
    r = requests.get(url, headers=accept)
    assert r.status_code == 401 and r.headers["Content-Type"] == "application/taxii+json;version=2.1"


def test_concurrent_writers_while_a_client_polls_lose_nothing(live):
    """Publishers post concurrently; a poller following X-TAXII-Date-Added-Last sees each object exactly once."""
    base, keys, ids = live
    url = f"{base}/dprk/collections/{ids['community']}/objects/"
    headers = {"Accept": "application/taxii+json;version=2.1", "Content-Type": "application/taxii+json;version=2.1"}
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def publish(slug: str, offset: int) -> None:
        auth = {"Authorization": f"Bearer {keys[slug]}"}
        for batch in range(12):
            objs = [
                f.indicator(offset + batch * 25 + n, markings=[GREEN], description=str(uuid.uuid4())) for n in range(25)
            ]
            r = requests.post(url, json={"objects": objs}, headers={**headers, **auth}, timeout=30)
            assert r.status_code == 202 and r.json()["success_count"] == 25
            with lock:
                accepted.extend(o["id"] for o in objs)

    received: list[str] = []
    cursor = {"added_after": None}

    def poll_once() -> None:
        params = {"limit": 40}
        if cursor["added_after"]:
            params["added_after"] = cursor["added_after"]
        r = requests.get(url, params=params, headers={**headers, "Authorization": f"Bearer {keys['singcert']}"})
        assert r.status_code == 200
        received.extend(o["id"] for o in r.json().get("objects", []))
        cursor["added_after"] = (
            r.headers["X-TAXII-Date-Added-Last"] if r.json().get("objects") else cursor["added_after"]
        )

    def poller() -> None:
        while not stop.is_set():
            poll_once()

    writers = [
        threading.Thread(target=publish, args=(slug, 10_000 * (i + 1)))
        for i, slug in enumerate(("krcert", "cisa", "singcert"))
    ]
    reader = threading.Thread(target=poller)
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    for _ in range(100):  # drain what is left
        before = len(received)
        poll_once()
        if len(received) == before:
            break
    demo_ids = set(received) - set(accepted)
    received_published = [i for i in received if i not in demo_ids]
    assert len(received_published) == len(set(received_published)), "an object was delivered twice"
    assert set(received_published) == set(accepted), "an accepted object was never delivered"
