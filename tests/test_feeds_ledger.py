"""Feed responses are recorded in the delivery ledger, so who-received names feed deliveries too."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from hub import ledger, stix
from hub import models as m
from hub.cli import main
from tests import factories as f
from tests.worlds import AMBER, small_world


@pytest.fixture
def world(hub):
    return small_world(hub)


def feed(app, key: str, fmt: str, **params):
    return app.test_client().get(
        f"/feeds/dprk/shared/{fmt}", headers={"Authorization": f"Bearer {key}"}, query_string=params, buffered=False
    )


def deliveries(hub) -> list[m.Delivery]:
    with hub.session(write=False) as s:
        return list(s.scalars(select(m.Delivery).order_by(m.Delivery.id)))


def added(hub, stix_id: str) -> int:
    with hub.session(write=False) as s:
        return s.scalars(select(m.ObjectVersion.date_added).where(m.ObjectVersion.stix_id == stix_id)).one()


def test_feed_response_is_recorded_before_its_body_streams(app, hub, world):
    objs = [f.indicator(1), f.indicator(2, markings=[AMBER]), f.indicator(3)]
    f.Client(app.test_client(), world["keys"]["krcert"]).post(world["url"], objs)
    resp = feed(app, world["keys"]["mycert"], "csv", include="withdrawn")
    assert resp.is_streamed
    rows = deliveries(hub)  # the body has not been read yet
    assert len(rows) == 1
    d = rows[0]
    assert (d.partner_slug, d.endpoint, d.count) == ("mycert", "csv", 2)  # AMBER is above mycert's clearance
    assert (d.first_added, d.last_added) == (added(hub, objs[0]["id"]), added(hub, objs[2]["id"]))
    filters = orjson.loads(d.filters)
    assert filters["types"] == ["indicator"] and filters["include"] == "withdrawn"
    resp.close()

    cursor = resp.headers["X-Feed-Cursor"]
    feed(app, world["keys"]["cisa"], "ip.txt", since=cursor).close()  # nothing new: an empty poll, batched
    assert len(deliveries(hub)) == 1
    assert ledger.flush_empty(hub) == 1
    empty = deliveries(hub)[-1]
    assert (empty.partner_slug, empty.endpoint, empty.count, empty.first_added) == ("cisa", "ip.txt", 0, None)
    assert orjson.loads(empty.filters)["after"] == stix.parse_filter_timestamp(cursor)


def test_who_received_names_feed_deliveries_under_the_rules(app, hub, world, settings, tmp_path: Path):
    green, amber = f.indicator(1), f.indicator(2, markings=[AMBER])
    f.Client(app.test_client(), world["keys"]["krcert"]).post(world["url"], [green, amber])
    feed(app, world["keys"]["mycert"], "ip.txt").close()
    feed(app, world["keys"]["cisa"], "stix").close()
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        got_green = ledger.who_received(s, snap, green["id"])
        got_amber = ledger.who_received(s, snap, amber["id"])
    assert [(r.partner, r.endpoint, r.collection) for r in got_green] == [
        ("mycert", "ip.txt", "shared"),
        ("cisa", "stix", "shared"),
    ]
    assert [r.partner for r in got_amber] == ["cisa"]  # mycert's feed covered its range, not its view

    env = {
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": "test-secret-key",
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    out = CliRunner().invoke(main, ["ledger", "who-received", green["id"]], env=env)
    assert out.exit_code == 0, out.output
    lines = [line.split() for line in out.output.splitlines()[1:]]
    assert [(line[0], line[3]) for line in lines] == [("mycert", "ip.txt"), ("cisa", "stix")]


def test_who_received_names_only_what_the_feed_body_listed(app, hub, world):
    """A feed's range covers every version of the view; its body lists only active ones of its kind."""
    ip, domain = f.indicator(1), f.indicator(2)
    domain["pattern"] = "[domain-name:value = 'lazarus-c2.example']"
    revoked = {**f.indicator(3), "revoked": True}
    f.Client(app.test_client(), world["keys"]["krcert"]).post(world["url"], [ip, domain, revoked])
    feed(app, world["keys"]["cisa"], "domain.txt").close()
    feed(app, world["keys"]["mycert"], "csv").close()
    feed(app, world["keys"]["mycert"], "ip.txt", include="withdrawn").close()  # the removal list only

    def who(obj: dict) -> list[tuple[str, str]]:
        with hub.session(write=False) as s:
            return [(r.partner, r.endpoint) for r in ledger.who_received(s, hub.snapshot(s), obj["id"])]

    assert who(ip) == [("mycert", "csv")]
    assert who(domain) == [("cisa", "domain.txt"), ("mycert", "csv")]
    assert who(revoked) == [("mycert", "ip.txt")]  # a revoked IP: only the removal list named it
