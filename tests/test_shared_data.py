"""Real public STIX (ATT&CK DPRK subset, vendor bundles, OASIS examples) published through TAXII."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from hub import reference
from hub.policy import TLP
from tests import factories as f
from tests.conftest import DATA

EXAMPLES = DATA / "stix-examples"


@pytest.fixture
def client(make_app):
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert")
        root = f.add_root(s, "dprk", max_content_length=50 * 1024 * 1024)
        f.add_collection(s, root, "intel", max_tlp=TLP.RED, default_tlp=TLP.GREEN)
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
    return f.Client(app.test_client(), f.key_for(hub, "krcert"))


URL = "/dprk/collections/intel/objects/"


def _objects(path: Path) -> list:
    data = json.loads(path.read_text())
    if isinstance(data, dict) and "objects" in data:
        return data["objects"]
    return data if isinstance(data, list) else [data]


def _post(client, objects: list) -> dict:
    r = client.post(URL, objects)
    assert r.status_code == 202, r.get_data()
    return r.get_json()


def test_attack_dprk_subset_is_accepted_whole(client):
    objects = _objects(DATA / "dprk-attack.json")
    failures = []
    for start in range(0, len(objects), 500):
        failures += _post(client, objects[start : start + 500]).get("failures", [])
    assert failures == []
    pulled = []
    page = client.get(URL, {"limit": 1000}).get_json()
    pulled += page["objects"]
    while page.get("more"):
        page = client.get(URL, {"limit": 1000, "next": page["next"]}).get_json()
        pulled += page.get("objects", [])
    assert {o["id"] for o in pulled} == {o["id"] for o in objects}
    by_id = {o["id"]: o for o in objects}
    assert all(o == by_id[o["id"]] for o in pulled)


@pytest.mark.parametrize("path", sorted((EXAMPLES / "valid").glob("*.json")), ids=lambda p: p.stem)
def test_valid_examples_are_accepted_unless_they_use_unknown_markings(client, path):
    objects = _objects(path)
    status = _post(client, objects)
    for failure in status.get("failures", []):
        # OASIS examples point at a made-up TLP:RED id, or mark properties TLP:RED without naming recipients.
        assert "unknown marking" in failure["message"] or "name its recipients" in failure["message"], failure
    assert status["success_count"] + status["failure_count"] == len(objects)


# Invalid only as a STIX bundle (no "type": "bundle"); TAXII envelopes have no bundle wrapper.
BUNDLE_ONLY = {"cti-stix-common-objects__extension-definition--60a3c5c5__at-2f22a22"}


@pytest.mark.parametrize(
    "path", sorted(p for p in (EXAMPLES / "invalid").glob("*.json") if p.stem not in BUNDLE_ONLY), ids=lambda p: p.stem
)
def test_invalid_examples_are_refused_with_reasons(client, path):
    text = path.read_bytes()
    try:
        objects = _objects(path)
    except json.JSONDecodeError:
        r = client.post(URL, body=text)
        assert r.status_code == 422 and "JSON" in r.get_json()["description"]
        return
    status = _post(client, objects)
    assert status["failure_count"] >= 1
    assert all(x["message"] for x in status["failures"])


@pytest.mark.parametrize("path", sorted(DATA.glob("ioc-stix/*.stix20.json")), ids=lambda p: p.stem)
def test_stix20_bundles_are_refused_naming_spec_version(client, path):
    status = _post(client, _objects(path))
    assert status["success_count"] == 0, status.get("successes")
    assert all("spec_version" in x["message"] for x in status["failures"])


@pytest.mark.parametrize("path", sorted(DATA.glob("ioc-stix/*.stix21.json")), ids=lambda p: p.stem)
def test_elastic_bundles_refuse_the_bent_tlp_marking_and_keep_the_indicators(client, path):
    objects = _objects(path)
    status = _post(client, objects)
    bent = [x for x in status["failures"] if x["id"].startswith("marking-definition--613f2e26")]
    assert bent, status.get("failures")
    indicators = {o["id"] for o in objects if o["type"] == "indicator"}
    accepted = {x["id"] for x in status.get("successes", [])}
    assert len(indicators & accepted) >= len(indicators) * 0.9


def test_the_hub_serves_exactly_what_was_stored(client):
    objects = _objects(DATA / "tlp2-markings.json") + _objects(DATA / "markings-extra.json")
    status = _post(client, objects)
    assert status["failure_count"] == 0, status["failures"]
    pulled = client.get(URL, {"limit": 100}).get_json()["objects"]
    assert sorted(orjson.dumps(o) for o in pulled) == sorted(orjson.dumps(o) for o in objects)
