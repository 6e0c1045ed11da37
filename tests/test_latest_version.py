"""Each partner gets the latest version it may see; ``newer_exists`` lets reads skip the search, never change it."""

from __future__ import annotations

from sqlalchemy import select

from hub import models as m
from tests import factories as f
from tests.worlds import INTEL_URL, intel_world

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
URL = INTEL_URL


def world(make_app):  # type: ignore[no-untyped-def]
    app = make_app()
    hub = app.extensions["cti_hub"]
    intel_world(hub, {"krcert": "RED", "mycert": "GREEN"}, max_tlp="AMBER")
    kr = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    my = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    return hub, kr, my


def versions_seen(client, **params: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    r = client.get(URL, params)
    assert r.status_code == 200
    return {o["id"]: o["modified"] for o in r.get_json().get("objects", [])}


def flags(hub) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    with hub.session(write=False) as s:
        rows = s.execute(
            select(m.ObjectVersion.version, m.ObjectVersion.newer_exists).where(m.ObjectVersion.type == "indicator")
        )
        return {version: flag for version, flag in rows}


def stamp(minute: int) -> str:
    return f"2026-01-01T00:{minute:02d}:00.000Z"


def test_versions_out_of_order_and_in_one_envelope(make_app):
    hub, kr, my = world(make_app)
    v1, v2, v3 = (f.indicator(1, markings=[GREEN], modified=stamp(m)) for m in (1, 2, 3))
    assert kr.post(URL, [v2]).get_json()["success_count"] == 1
    assert kr.post(URL, [v1]).get_json()["success_count"] == 1  # an older version arrives later
    assert versions_seen(my) == {v2["id"]: stamp(2)}
    assert flags(hub) == {stamp(1): True, stamp(2): False}
    assert kr.post(URL, [v3, v1]).get_json()["success_count"] == 2  # v1 again: a duplicate
    assert versions_seen(my) == {v2["id"]: stamp(3)}
    assert flags(hub) == {stamp(1): True, stamp(2): True, stamp(3): False}
    w = [f.indicator(9, markings=[GREEN], modified=stamp(m)) for m in (5, 4)]
    assert kr.post(URL, w).get_json()["success_count"] == 2
    assert versions_seen(my)[w[0]["id"]] == stamp(5)
    assert flags(hub)[stamp(4)] is True and flags(hub)[stamp(5)] is False


def test_a_newer_version_a_partner_may_not_see_leaves_it_the_last_one_it_may(make_app):
    hub, kr, my = world(make_app)
    green = f.indicator(1, markings=[GREEN], modified=stamp(1))
    amber = f.indicator(1, markings=[AMBER], modified=stamp(2))
    assert kr.post(URL, [green, amber]).get_json()["success_count"] == 2
    assert versions_seen(my) == {green["id"]: stamp(1)}  # MyCERT is cleared for GREEN only
    assert versions_seen(kr) == {green["id"]: stamp(2)}
    assert versions_seen(my, **{"match[version]": "all"}) == {green["id"]: stamp(1)}


def test_deleting_the_newest_version_makes_the_previous_one_the_latest(make_app):
    hub, kr, my = world(make_app)
    v1, v2 = (f.indicator(1, markings=[GREEN], modified=stamp(m)) for m in (1, 2))
    assert kr.post(URL, [v1, v2]).get_json()["success_count"] == 2
    r = kr.delete(f"{URL}{v1['id']}/", {"match[version]": stamp(2)})
    assert r.status_code == 200
    assert flags(hub) == {stamp(1): False}
    assert versions_seen(my) == {v1["id"]: stamp(1)}
    assert versions_seen(kr) == {v1["id"]: stamp(1)}
