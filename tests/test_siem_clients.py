"""Replay the polling patterns of real TAXII consumers; every object must arrive exactly once.

The request sequences follow ../shared/spec/sharing-and-siem.md §c: Microsoft Sentinel (Basic auth),
Elastic's custom TI integration (``X-TAXII-Date-Added-Last`` cursor, ``next`` without ``added_after``),
OpenCTI core (``next`` saved across runs and replayed hours later), taxii2-client ``as_pages`` (MISP
pull, the OpenCTI connector) and MISP push (envelopes split by ``max_content_length``).
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest
from werkzeug.serving import make_server

from hub import ingest
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import clock
from tests import factories as f

TAXII = "application/taxii+json;version=2.1"
HOUR_US = 3_600_000_000


@pytest.fixture
def hub(app) -> Hub:
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        root = f.add_root(s, "dprk", max_content_length=20_000)
        f.add_collection(s, root, "shared", max_tlp=TLP.RED)
    return hub


@pytest.fixture
def keys(hub) -> dict[str, str]:
    return {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "mycert")}


def collection_id(hub: Hub) -> str:
    with hub.session(write=False) as s:
        return next(c.uuid for c in hub.snapshot(s).collections.values() if c.alias == "shared")


class Publisher:
    """krcert publishing batches of indicators; remembers what each consumer should receive."""

    def __init__(self, hub: Hub) -> None:
        self.hub, self.n, self.sent = hub, 0, []
        with hub.session(write=False) as s:
            self.pk = hub.snapshot(s).by_slug["krcert"]

    def publish(self, count: int) -> None:
        objs = [f.indicator(self.n + i) for i in range(count)]
        self.n += count
        result = ingest.ingest_envelope(self.hub, self.pk, collection_id(self.hub), objs)
        assert not result.failures
        self.sent += [o["id"] for o in objs]


def exactly_once(received: list[str], sent: list[str]) -> None:
    counts = Counter(received)
    assert [k for k, n in counts.items() if n > 1] == []
    assert set(received) == set(sent)


def basic(user: str, key: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode(), "Accept": TAXII}


def test_sentinel_basic_auth_polling(app, hub, keys):
    pub, http = Publisher(hub), app.test_client()
    url = f"/dprk/collections/{collection_id(hub)}/objects/"
    headers = basic("cisa", keys["cisa"])
    pub.publish(23)
    received: list[str] = []
    added_after = "1970-01-01T00:00:00Z"  # "Import indicators: all available"
    for batch in (0, 11, 0, 7):
        pub.publish(batch)
        params = {"added_after": added_after, "limit": 10}
        while True:
            r = http.get(url, query_string=params, headers=headers)
            assert r.status_code == 200 and r.mimetype == "application/taxii+json"
            body = r.get_json()
            received += [o["id"] for o in body.get("objects", [])]
            added_after = r.headers["X-TAXII-Date-Added-Last"]
            if not body.get("more"):
                break
            params = {"added_after": params["added_after"], "limit": 10, "next": body["next"]}
    exactly_once(received, pub.sent)
    assert http.get(url, headers={"Accept": TAXII}).status_code == 401


def test_elastic_cursor_and_next_without_added_after(app, hub, keys):
    pub, http = Publisher(hub), app.test_client()
    url = f"/dprk/collections/{collection_id(hub)}/objects/"
    headers = {"Authorization": f"Bearer {keys['cisa']}", "Accept": "application/taxii+json"}
    pub.publish(17)
    # First poll: added_after = now - initial_interval, in RFC 3339 seconds.
    first = clock.now_us() // 1_000_000 - 3600
    cursor = f"{datetime.fromtimestamp(first, UTC):%Y-%m-%dT%H:%M:%SZ}"
    received: list[str] = []
    for batch in (0, 6, 0, 9):
        pub.publish(batch)
        r = http.get(url, query_string={"added_after": cursor, "limit": 4}, headers=headers)
        while True:
            assert r.status_code == 200
            body = r.get_json()
            received += [
                o["id"] for o in body.get("objects", []) if o["type"] == "indicator" and o.get("spec_version") == "2.1"
            ]
            last = r.headers["X-TAXII-Date-Added-Last"]
            if not body.get("next"):
                break
            r = http.get(url, query_string={"next": body["next"], "limit": 4}, headers=headers)
        cursor = last
    exactly_once(received, pub.sent)


def test_opencti_core_replays_next_hours_later(app, hub, keys, monkeypatch):
    pub, http = Publisher(hub), app.test_client()
    url = f"/dprk/collections/{collection_id(hub)}/objects/"
    headers = {"Authorization": f"Bearer {keys['cisa']}", "Accept": TAXII}
    state: dict[str, str | None] = {"added_after": "2020-01-01T00:00:00.000Z", "next": None}
    received: list[str] = []
    real_now, offset = clock.now_us, [0]
    monkeypatch.setattr(clock, "now_us", lambda: real_now() + offset[0])
    pub.publish(25)
    for run in range(12):
        if run in (3, 6):
            pub.publish(8)
        offset[0] += 5 * HOUR_US  # the schedule runs again hours later
        params = {"added_after": state["added_after"], "limit": 10}
        if state["next"]:
            params["next"] = state["next"]
        r = http.get(url, query_string=params, headers=headers)
        assert r.status_code == 200, r.get_data()
        body = r.get_json()
        received += [o["id"] for o in body.get("objects", [])]
        if body.get("more") and body.get("next"):
            state["next"] = body["next"]
        elif body.get("objects"):
            state = {"added_after": r.headers["X-TAXII-Date-Added-Last"], "next": None}
    exactly_once(received, pub.sent)


@pytest.fixture
def live(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_taxii2_client_as_pages(hub, keys, live):
    from taxii2client.v21 import ApiRoot, as_pages

    pub = Publisher(hub)
    pub.publish(37)
    root = ApiRoot(f"{live}/dprk/", user="mycert", password=keys["mycert"])
    collection = next(c for c in root.collections if c.id == collection_id(hub))
    received: list[str] = []
    for envelope in as_pages(collection.get_objects, per_request=10, added_after="2020-01-01T00:00:00Z"):
        received += [o["id"] for o in envelope.get("objects", [])]
    exactly_once(received, pub.sent)
    received2: list[str] = []
    for envelope in as_pages(collection.get_objects, per_request=100):
        received2 += [o["id"] for o in envelope.get("objects", [])]
    exactly_once(received2, pub.sent)


def test_misp_push_splits_envelopes_by_max_content_length(app, hub, keys):
    http = app.test_client()
    headers = {"Authorization": f"Bearer {keys['krcert']}", "Accept": TAXII, "Content-Type": TAXII}
    limit = http.get("/dprk/", headers=headers).get_json()["max_content_length"]
    objs = [f.indicator(500 + n, description="x" * 300) for n in range(120)]
    assert len(orjson.dumps({"objects": objs})) > limit
    url = f"/dprk/collections/{collection_id(hub)}/objects/"
    assert http.post(url, data=orjson.dumps({"objects": objs}), headers=headers).status_code == 413
    batches, batch = [], []
    for obj in objs:
        if batch and len(orjson.dumps({"objects": [*batch, obj]})) > limit:
            batches.append(batch)
            batch = []
        batch.append(obj)
    batches.append(batch)
    assert len(batches) > 2
    for part in batches:
        r = http.post(url, data=orjson.dumps({"objects": part}), headers=headers)
        assert r.status_code == 202 and r.get_json()["success_count"] == len(part)
    # A retried envelope is counted as success and stores nothing twice.
    assert http.post(url, data=orjson.dumps({"objects": batches[0]}), headers=headers).status_code == 202
    reader = {**headers, "Authorization": f"Bearer {keys['cisa']}"}
    received: list[str] = []
    params: dict = {"limit": 50}
    while True:
        body = http.get(url, query_string=params, headers=reader).get_json()
        received += [o["id"] for o in body.get("objects", [])]
        if not body.get("more"):
            break
        params = {"limit": 50, "next": body["next"]}
    exactly_once(received, [o["id"] for o in objs])
