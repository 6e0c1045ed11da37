"""A rule change that lets a partner see older objects re-dates them, so added_after pollers receive them."""

from __future__ import annotations

from sqlalchemy import select

from hub import ledger, sharing
from hub import models as m
from tests import factories as f

GREEN = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"

CONFIG = """
hub: {{name: "Test hub", contact: "ops@hub.example"}}
partners:
  - {{id: krcert, name: "KrCERT/CC", country: KR, clearance: RED}}
  - {{id: mycert, name: "MyCERT", country: MY, clearance: {clearance}}}
trust_groups: []
api_roots:
  - id: dprk
    title: "DPRK"
    collections:
      - {{alias: intel, title: "Intel", max_tlp: AMBER, default_tlp: GREEN, readers: ["*"], writers: ["*"]}}
"""


def apply(hub, clearance: str) -> list:
    with hub.session() as s:
        return sharing.apply(s, sharing.loads(CONFIG.format(clearance=clearance)))


def poll(client, cursor: str | None) -> tuple[list[str], str | None]:
    params = {"added_after": cursor} if cursor else {}
    r = client.get("/dprk/collections/intel/objects/", params)
    assert r.status_code == 200
    ids = [o["id"] for o in r.get_json().get("objects", [])]
    return ids, r.headers["X-TAXII-Date-Added-Last"] if ids else cursor


def test_raised_clearance_reaches_a_poller_that_is_past_the_objects(make_app):
    app = make_app()
    hub = app.extensions["cti_hub"]
    apply(hub, "GREEN")
    kr = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    my = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    amber, green = f.indicator(1, markings=[AMBER]), f.indicator(2, markings=[GREEN])
    assert kr.post("/dprk/collections/intel/objects/", [amber, green]).get_json()["success_count"] == 2
    seen, cursor = poll(my, None)
    assert green["id"] in seen and amber["id"] not in seen
    later = f.indicator(3, markings=[GREEN])
    kr.post("/dprk/collections/intel/objects/", [later])
    seen, cursor = poll(my, cursor)
    assert seen == [later["id"]]

    assert apply(hub, "AMBER")  # the partner may now receive TLP:AMBER
    seen, cursor = poll(my, cursor)
    assert seen == [amber["id"]], "the older AMBER object must reach the poller"
    assert poll(my, cursor)[0] == []
    assert apply(hub, "AMBER") == []  # nothing changed: nothing re-dated
    assert poll(my, cursor)[0] == []


def test_narrowing_re_dates_nothing(make_app):
    app = make_app()
    hub = app.extensions["cti_hub"]
    apply(hub, "AMBER")
    kr = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    my = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    kr.post("/dprk/collections/intel/objects/", [f.indicator(1, markings=[AMBER]), f.indicator(2)])
    _, my_cursor = poll(my, None)
    _, kr_cursor = poll(kr, None)
    apply(hub, "GREEN")
    assert poll(my, my_cursor)[0] == []
    assert poll(kr, kr_cursor)[0] == []


def test_the_admin_panel_re_dates_too(make_app):
    from hub.admin import data_accounts as data

    app = make_app()
    hub = app.extensions["cti_hub"]
    apply(hub, "GREEN")
    kr = f.Client(app.test_client(), f.key_for(hub, "krcert"))
    my = f.Client(app.test_client(), f.key_for(hub, "mycert"))
    amber = f.indicator(1, markings=[AMBER])
    kr.post("/dprk/collections/intel/objects/", [amber, f.indicator(2)])
    _, cursor = poll(my, None)
    with hub.session() as s:
        values = {**data.partner_values(data.get_partner(s, "mycert")), "clearance": "AMBER"}
        data.save_partner(s, "admin", "mycert", values)
    assert poll(my, cursor)[0] == [amber["id"]]


def test_the_ledger_still_names_pages_served_before_a_version_was_re_dated(make_app):
    app = make_app()
    hub = app.extensions["cti_hub"]
    config = CONFIG.replace(
        "  - {{id: mycert", '  - {{id: cisa, name: "CISA", country: US, clearance: AMBER}}\n  - {{id: mycert'
    )
    with hub.session() as s:
        sharing.apply(s, sharing.loads(config.format(clearance="GREEN")))
    kr, us, my = (f.Client(app.test_client(), f.key_for(hub, slug)) for slug in ("krcert", "cisa", "mycert"))
    amber = f.indicator(1, markings=[AMBER])
    assert kr.post("/dprk/collections/intel/objects/", [amber]).get_json()["success_count"] == 1
    seen, us_cursor = poll(us, None)
    assert seen == [amber["id"]]

    def received() -> list[str]:
        with hub.session(write=False) as s:
            return [r.partner for r in ledger.who_received(s, hub.snapshot(s), amber["id"])]

    def date_added() -> int:
        with hub.session(write=False) as s:
            return s.scalars(select(m.ObjectVersion.date_added).where(m.ObjectVersion.stix_id == amber["id"])).one()

    served_at = date_added()
    assert received() == ["cisa"]
    with hub.session() as s:
        assert sharing.apply(s, sharing.loads(config.format(clearance="AMBER")))
    assert date_added() > served_at, "mycert may now read it: the version is re-dated"
    assert received() == ["cisa"], "the page cisa received before the re-dating is still on record, once"
    assert poll(my, None)[0] == [amber["id"]]
    assert received() == ["cisa", "mycert"]
    assert poll(us, us_cursor)[0] == [amber["id"]], "a poller past the old date receives the re-dated version again"
    assert received() == ["cisa", "mycert", "cisa"]
