"""The bulk-import pipeline (validation in a worker process) decides exactly as inline validation does."""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

import feeds.base
from feeds.base import resolve_target
from feeds.stix_bundle import StixBundle
from hub import models as m
from hub.demo import data as demo_data
from hub.ids import HUB_NAMESPACE
from hub.policy import TLP
from hub.runtime import Hub
from hub.store import values
from tests import factories as f
from tests.conftest import fresh_database_url

SHARE_KR = "marking-definition--5a1c4a0e-8a7b-4f4e-9d0b-2b1f5f0d1c01"


def make_hub(make_app) -> Hub:
    hub = make_app().extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        for slug, country in (("krcert", "KR"), ("cisa", "US")):
            f.add_partner(s, slug, country, TLP.RED)
        f.add_collection(s, f.add_root(s, "dprk"), "shared", max_tlp=TLP.RED)
    return hub


def bundle_objects() -> list[dict]:
    """Valid and invalid objects, a new sharing marking used by later objects, duplicates, 2.0 content."""
    pub = demo_data.Publisher("krcert", f"identity--{f.uuid.uuid5(HUB_NAMESPACE, 'krcert')}")
    objs = list(demo_data.indicators(60, publishers=[pub], seed=3, sharing_markings=[SHARE_KR], sharing_ratio=0.3))
    objs.insert(5, f.sharing_marking(SHARE_KR, partners=["krcert"]))
    objs[10] = {**objs[10], "pattern": "[ipv4-addr:value = "}  # invalid pattern
    objs[20] = {**objs[20], "valid_until": "2000-01-01T00:00:00Z"}  # valid_until before valid_from
    objs[30] = {**objs[30], "created_by_ref": f"identity--{f.uuid.uuid5(HUB_NAMESPACE, 'cisa')}"}
    objs.append(dict(objs[40]))  # the same object twice
    objs.append({**objs[41], "name": "changed, same version"})  # a different object under a stored version
    objs.append(
        {
            "type": "indicator",
            "id": "indicator--0d4ab1f4-53bb-4b34-a3d0-6bd8f0e3ab21",
            "created": "2024-02-01T00:00:00.000Z",
            "modified": "2024-02-01T00:00:00.000Z",
            "labels": ["malicious-activity"],
            "pattern": "[domain-name:value = 'a.example']",
            "valid_from": "2024-02-01T00:00:00Z",
        }
    )  # STIX 2.0: upgraded by the connector
    objs.append({"type": "indicator", "spec_version": "2.1", "id": "indicator--bad"})
    return objs


def import_bundle(hub: Hub, path, pipeline: bool) -> tuple[feeds.base.Outcome, list[tuple], list[tuple]]:
    """Import the bundle; return the tally, the stored versions and their search terms, in ``date_added`` order."""
    target = resolve_target(hub, "krcert", "shared", "dprk")
    connector = StixBundle(hub, target)
    connector.json_items = pipeline
    outcome = connector.ingest(connector.load(str(path)))
    with hub.session(write=False) as s:
        rows = s.execute(
            select(
                m.ObjectVersion.stix_id,
                m.ObjectVersion.version_us,
                m.ObjectVersion.tlp,
                m.ObjectVersion.restriction_set_id,
                m.ObjectVersion.raw,
            ).order_by(m.ObjectVersion.date_added)
        ).all()
        terms = s.execute(
            select(m.ObjectVersion.stix_id, m.ObjectVersion.version_us, m.ObjectValue.kind, m.ObjectValue.term)
            .join(m.ObjectValue, m.ObjectValue.version_pk == m.ObjectVersion.pk)
            .order_by(m.ObjectVersion.date_added, m.ObjectValue.term)
        ).all()
    return outcome, [tuple(r) for r in rows], [tuple(t) for t in terms]


def test_pipeline_matches_inline_validation(make_app, tmp_path, monkeypatch, db_engine_name, db_template):
    path = tmp_path / "bundle.json"
    path.write_bytes(
        orjson.dumps(
            {"type": "bundle", "id": "bundle--3f0b8a4e-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "objects": bundle_objects()}
        )
    )
    monkeypatch.setattr(feeds.base, "CHUNK", 9)  # several chunks, one marking defined in an earlier one
    monkeypatch.setattr(feeds.base, "PIPELINE_MIN", 0)
    started = []
    real_validator = feeds.base._validator
    monkeypatch.setattr(feeds.base, "_validator", lambda: started.append(1) or real_validator())

    inline_hub = make_hub(make_app)
    inline_outcome, inline_rows, inline_terms = import_bundle(inline_hub, path, pipeline=False)
    assert not started
    inline_hub.engine.dispose()
    hub = make_hub(
        lambda: make_app(database_url=fresh_database_url(db_engine_name, db_template, tmp_path / "again.db"))
    )
    worked_out = []  # the terms the storing process works out itself: none, the worker sent them all
    real_terms_of = values.terms_of
    monkeypatch.setattr(values, "terms_of", lambda pk, raw: worked_out.append(pk) or real_terms_of(pk, raw))
    outcome, rows, terms = import_bundle(hub, path, pipeline=True)
    assert started == [1]
    assert worked_out == []

    assert outcome.refusals == inline_outcome.refusals
    assert (outcome.accepted, outcome.unchanged) == (inline_outcome.accepted, inline_outcome.unchanged)
    assert rows == inline_rows
    assert terms == inline_terms  # the worker's search terms are those worked out inline
    assert {kind for *_, kind, _ in terms} >= {"name", "domain", "ipv4-addr:value"}
    reasons = " ".join(reason for _, reason in outcome.refusals)
    for expected in ("pattern", "valid_until", "names another partner", "versions are immutable", "indicator--bad"):
        assert expected in reasons
    # The second copy of the duplicated object arrives in a later chunk, after the first was stored.
    assert outcome.unchanged == 1 and outcome.accepted == len(rows)

    again, rows_again, _ = import_bundle(hub, path, pipeline=True)  # idempotent: nothing new, all unchanged
    assert rows_again == rows
    assert again.accepted == 0 and again.unchanged == outcome.accepted + 1  # + the duplicate in the bundle
    assert again.refusals == outcome.refusals


@pytest.mark.parametrize("pipeline", [False, True])
def test_unsized_stream_is_imported_in_chunks(make_app, monkeypatch, pipeline):
    monkeypatch.setattr(feeds.base, "CHUNK", 7)
    hub = make_hub(make_app)
    target = resolve_target(hub, "krcert", "shared", "dprk")
    pub = demo_data.Publisher("krcert", f"identity--{f.uuid.uuid5(HUB_NAMESPACE, 'krcert')}")
    objs = demo_data.indicators(30, publishers=[pub], seed=4, tlp_mix={TLP.GREEN: 1.0})
    connector = StixBundle(hub, target)
    connector.json_items = pipeline
    seen = []
    outcome = connector.ingest((feeds.base.Item(o) for o in objs), seen.append)
    assert seen == [7, 7, 7, 7, 2]
    assert (outcome.accepted, outcome.unchanged, outcome.refused_total) == (30, 0, 0)
