"""The delivery ledger: one row per TAXII page, and an exact "who received this object" answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import insert, select, update

from hub import ledger
from hub import models as m
from hub.cli import main
from hub.errors import NotFound
from hub.policy import TLP
from hub.store import snapshots
from tests import factories as f
from tests.worlds import AMBER, small_world

V2 = "2024-06-01T00:00:00.000Z"


@pytest.fixture
def world(hub):
    return small_world(hub)


@pytest.fixture
def as_(app, world):
    def client(slug: str) -> f.Client:
        return f.Client(app.test_client(), world["keys"][slug])

    return client


def received(hub, stix_id: str, version: str | None = None) -> list[ledger.Receipt]:
    with hub.session(write=False) as s:
        return ledger.who_received(s, hub.snapshot(s), stix_id, version)


def deliveries(hub) -> list[m.Delivery]:
    with hub.session(write=False) as s:
        return list(s.scalars(select(m.Delivery).order_by(m.Delivery.id)))


def key_id(hub, slug: str) -> str:
    with hub.session(write=False) as s:
        return s.scalars(select(m.ApiKey.key_id).join(m.Partner).where(m.Partner.slug == slug)).one()


def test_every_page_is_recorded_with_partner_key_filters_range_and_rules(hub, world, as_):
    as_("krcert").post(world["url"], [f.indicator(n) for n in range(5)])
    first = as_("cisa").get(world["url"], {"limit": "2", "match[type]": "indicator"})
    as_("cisa").get(world["url"], {"next": first.get_json()["next"]})
    as_("cisa").get(world["url"].replace("objects/", "manifest/"))
    as_("mycert").get(world["url"], {"added_after": "2099-01-01T00:00:00Z"})
    assert len(deliveries(hub)) == 3  # the empty poll waits for the batch
    assert ledger.flush_empty(hub) == 1
    rows = deliveries(hub)
    assert [(d.partner_slug, d.endpoint, d.count) for d in rows] == [
        ("cisa", "objects", 2),
        ("cisa", "objects", 3),
        ("cisa", "manifest", 5),
        ("mycert", "objects", 0),
    ]
    with hub.session(write=False) as s:
        added = s.scalars(
            select(m.ObjectVersion.date_added)
            .join(m.Collection)
            .where(m.Collection.uuid == world["shared"])
            .order_by(m.ObjectVersion.date_added)
        ).all()
        rules = snapshots.rules_version(s)
    assert (rows[0].first_added, rows[0].last_added) == (added[0], added[1])
    assert (rows[1].first_added, rows[1].last_added) == (added[2], added[4])
    assert rows[0].key_id == key_id(hub, "cisa") and rows[0].rules_version == rules
    assert '"types":["indicator"]' in rows[1].filters and '"after":' in rows[1].filters
    assert rows[3].first_added is None and rows[3].last_added is None


def test_who_received_follows_the_sharing_rules_not_just_the_range(hub, world, as_):
    """mycert (GREEN) polled a page whose range covers an AMBER object it was not given."""
    green, amber = f.indicator(1), f.indicator(2, markings=[AMBER])
    as_("krcert").post(world["url"], [green, amber, f.indicator(3)])
    served = as_("mycert").get(world["url"]).get_json()["objects"]
    assert [o["id"] for o in served] == [green["id"], f.indicator(3)["id"]]
    as_("cisa").get(world["url"])
    assert [(r.partner, r.key_id, r.endpoint, r.collection) for r in received(hub, amber["id"])] == [
        ("cisa", key_id(hub, "cisa"), "objects", "shared")
    ]
    assert [r.partner for r in received(hub, green["id"])] == ["mycert", "cisa"]


def test_who_received_stays_exact_after_the_rules_change(hub, world, as_):
    amber = f.indicator(2, markings=[AMBER])
    as_("krcert").post(world["url"], [f.indicator(1), amber])
    as_("mycert").get(world["url"])
    as_("cisa").get(world["url"])
    with hub.session(write=False) as s:
        before = snapshots.rules_version(s)
    with hub.session() as s:
        s.execute(update(m.Partner).where(m.Partner.slug == "mycert").values(clearance=int(TLP.AMBER)))
        s.execute(update(m.Collection).where(m.Collection.uuid == world["shared"]).values(readers="partner:mycert"))
        snapshots.bump_rules(s)
    # Today mycert may read AMBER and cisa may not read at all: the ledger still says what happened then.
    got = received(hub, amber["id"])
    assert [(r.partner, r.rules_version) for r in got] == [("cisa", before)]
    as_("mycert").get(world["url"])
    got = received(hub, amber["id"])
    assert [(r.partner, r.rules_version) for r in got] == [("cisa", before), ("mycert", before + 1)]


def test_who_received_tells_versions_apart(hub, world, as_):
    v1 = f.indicator(7)
    as_("krcert").post(world["url"], [v1])
    as_("cisa").get(world["url"])
    as_("krcert").post(world["url"], [f.indicator(7, modified=V2)])
    as_("mycert").get(world["url"])  # only the newest version ("last"), though its range covers both
    versions_url = world["url"] + v1["id"] + "/versions/"
    assert as_("krcert").get(versions_url).status_code == 200
    every = received(hub, v1["id"])
    assert [(r.partner, r.version) for r in every] == [
        ("cisa", f.CLOCK),
        ("mycert", V2),
        ("krcert", f.CLOCK),
        ("krcert", V2),
    ]
    assert {r.endpoint for r in every if r.partner == "krcert"} == {"versions"}
    assert [r.partner for r in received(hub, v1["id"], f.CLOCK)] == ["cisa", "krcert"]
    assert [r.partner for r in received(hub, v1["id"], "2024-06-01T00:00:00Z")] == ["mycert", "krcert"]


def test_who_received_names_a_missing_object_or_version(hub, world, as_):
    as_("krcert").post(world["url"], [f.indicator(1)])
    with pytest.raises(NotFound, match="no indicator--"):
        received(hub, f.indicator(99)["id"])
    with pytest.raises(NotFound, match="version 2030-01-01T00:00:00Z"):
        received(hub, f.indicator(1)["id"], "2030-01-01T00:00:00Z")
    with pytest.raises(NotFound, match="'soon' is not a timestamp"):
        received(hub, f.indicator(1)["id"], "soon")
    assert received(hub, f.indicator(1)["id"]) == []


def test_ledger_cli_who_received(hub, world, as_, settings, tmp_path: Path):
    obj = f.indicator(1)
    as_("krcert").post(world["url"], [obj])
    env = {
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": "test-secret-key",
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    runner = CliRunner()
    nobody = runner.invoke(main, ["ledger", "who-received", obj["id"]], env=env)
    assert nobody.exit_code == 0 and f"no partner has received {obj['id']}" in nobody.output
    as_("cisa").get(world["url"] + obj["id"] + "/")
    out = runner.invoke(main, ["ledger", "who-received", obj["id"], "--version", f.CLOCK], env=env)
    assert out.exit_code == 0, out.output
    line = out.output.splitlines()[1].split()
    assert line[0] == "cisa" and line[1] == key_id(hub, "cisa") and line[3] == "object" and line[-1] == f.CLOCK
    missing = runner.invoke(main, ["ledger", "who-received", f.indicator(50)["id"]], env=env)
    assert missing.exit_code == 1 and "the hub holds no indicator--" in missing.output


def test_who_received_ignores_the_many_pages_that_do_not_cover_the_object(hub, world, as_):
    """5,000 recorded pages around the object, none covering it (bench/ledger.py times a million)."""
    obj = f.indicator(1)
    as_("krcert").post(world["url"], [obj])
    as_("cisa").get(world["url"])
    with hub.session(write=False) as s:
        collection_pk = s.scalars(select(m.Collection.id).where(m.Collection.uuid == world["shared"])).one()
        rules = snapshots.rules_version(s)
        added = s.scalars(select(m.ObjectVersion.date_added).where(m.ObjectVersion.stix_id == obj["id"])).one()
    base = {
        "partner_id": 999,
        "partner_slug": "bulk",
        "key_id": "kbulk",
        "endpoint": "objects",
        "collection_id": collection_pk,
        "filters": "{}",
        "rules_version": rules,
        "count": 1000,
    }
    # Half the pages before the object, half after: the range scan walks everything before it.
    rows = [
        {
            **base,
            "at_us": n,
            "first_added": added + (n - 2_500) * 1000 + (1 if n >= 2_500 else 0),
            "last_added": added + (n - 2_500) * 1000 + 999 + (1 if n >= 2_500 else -1000),
        }
        for n in range(5_000)
    ]
    with hub.session() as s:
        for start in range(0, len(rows), 10_000):
            s.execute(insert(m.Delivery), rows[start : start + 10_000])
    got = received(hub, obj["id"])
    assert [r.partner for r in got] == ["cisa"]
