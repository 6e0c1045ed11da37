"""Objects that leave a partner's view are listed as withdrawn in that partner's feeds, and only there."""

from __future__ import annotations

import csv
import io
import uuid

import orjson
import pytest
from sqlalchemy import func, select

from hub import models as m
from hub import stix
from hub.policy import TLP
from tests import factories as f
from tests.worlds import INTEL_URL, intel_world

GREEN = stix.TLP2_MARKINGS[TLP.GREEN]["id"]
AMBER = stix.TLP2_MARKINGS[TLP.AMBER]["id"]
ONLY_CISA = "marking-definition--7b0d3c55-0f3e-4f57-8d83-3c4f3f8b5a10"

OBJECTS = INTEL_URL


def apply(hub, clearance: str) -> list:
    """The intel world with mycert at ``clearance`` (krcert and cisa RED)."""
    return intel_world(hub, {"krcert": "RED", "mycert": clearance, "cisa": "RED"})


@pytest.fixture
def world(app, hub):
    apply(hub, "AMBER")
    return {slug: f.Client(app.test_client(), f.key_for(hub, slug)) for slug in ("krcert", "mycert", "cisa")}


def ind(n: int, value: str, **extra) -> dict:
    return f.indicator(n, pattern=f"[ipv4-addr:value = '{value}']", **extra)


def feed(client: f.Client, fmt: str, **params):
    r = client.http.get(
        f"/feeds/dprk/intel/{fmt}", headers={"Authorization": f"Bearer {client.secret}"}, query_string=params
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    return r


def csv_rows(client: f.Client, **params) -> list[dict]:
    return list(csv.DictReader(io.StringIO(feed(client, "csv", **params).get_data(as_text=True))))


def withdrawal_refs(client: f.Client, **params) -> list[str]:
    bundle = orjson.loads(feed(client, "stix", **params).get_data())
    return [o["object_ref"] for o in bundle["objects"] if o["type"] == "x-cti-hub-withdrawal"]


def assert_absent(client: f.Client, stix_id: str) -> None:
    """The object answers exactly like an id the hub never held, on every TAXII endpoint."""
    never = f"indicator--{uuid.uuid4()}"
    for suffix in ("{}/", "{}/versions/"):
        a, b = client.get(OBJECTS + suffix.format(stix_id)), client.get(OBJECTS + suffix.format(never))
        assert a.status_code == b.status_code == 404
        assert a.get_json()["description"].replace(stix_id, "X") == b.get_json()["description"].replace(never, "X")
        assert sorted(a.headers.keys()) == sorted(b.headers.keys())
    for listing in (OBJECTS, OBJECTS.replace("objects/", "manifest/")):
        a, b = client.get(listing, {"match[id]": stix_id}), client.get(listing, {"match[id]": never})
        assert a.status_code == b.status_code == 200 and a.get_json() == b.get_json()


def test_narrowed_clearance_lists_the_lost_objects_in_that_partners_feed_only(world, hub):
    amber, green = ind(1, "198.51.100.1", markings=[AMBER]), ind(2, "198.51.100.2", markings=[GREEN])
    assert world["krcert"].post(OBJECTS, [amber, green]).get_json()["success_count"] == 2
    my_rows = csv_rows(world["mycert"])
    assert {r["id"] for r in my_rows} == {amber["id"], green["id"]}
    my_cursor = feed(world["mycert"], "csv").headers["X-Feed-Cursor"]
    cisa_cursor = feed(world["cisa"], "csv").headers["X-Feed-Cursor"]

    assert apply(hub, "GREEN")  # mycert may no longer receive TLP:AMBER
    gone = csv_rows(world["mycert"], since=my_cursor, include="withdrawn")
    assert [(r["id"], r["status"], r["value"], r["tlp"]) for r in gone] == [
        (amber["id"], "withdrawn", "198.51.100.1", "TLP:AMBER")
    ]
    assert withdrawal_refs(world["mycert"], since=my_cursor, include="withdrawn") == [amber["id"]]
    assert (
        feed(world["mycert"], "ip.txt", since=my_cursor, include="withdrawn").get_data(as_text=True) == "198.51.100.1\n"
    )
    docs = [
        orjson.loads(x)
        for x in feed(world["mycert"], "ecs", since=my_cursor, include="withdrawn").get_data(as_text=True).splitlines()
    ]
    assert [(d["threat"]["indicator"]["id"], d["threat"]["indicator"]["ip"], d["tags"]) for d in docs] == [
        ([amber["id"]], "198.51.100.1", ["withdrawn"])
    ]
    assert csv_rows(world["mycert"], since=my_cursor) == []  # without include=withdrawn: active ones only
    # cisa lost nothing: its feed lists no withdrawal, and no id it never lost.
    assert csv_rows(world["cisa"], since=cisa_cursor, include="withdrawn") == []
    assert withdrawal_refs(world["cisa"], include="withdrawn") == []
    # The cursor moves past the withdrawal: the next poll does not repeat it.
    later = feed(world["mycert"], "csv", since=my_cursor, include="withdrawn").headers["X-Feed-Cursor"]
    assert csv_rows(world["mycert"], since=later, include="withdrawn") == []
    assert_absent(world["mycert"], amber["id"])
    assert world["cisa"].get(OBJECTS + amber["id"] + "/").status_code == 200
    assert apply(hub, "GREEN") == []  # nothing changed: nothing more withdrawn
    with hub.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.Withdrawal)) == 1


def test_deletion_is_listed_for_those_who_could_see_it_and_never_leaks_to_others(world, hub):
    restricted = ind(3, "203.0.113.3", markings=[GREEN, ONLY_CISA])
    open_one = ind(4, "203.0.113.4", markings=[GREEN])
    marking = f.sharing_marking(ONLY_CISA, partners=["cisa"])
    assert world["krcert"].post(OBJECTS, [marking, restricted, open_one]).get_json()["success_count"] == 3
    cursors = {slug: feed(world[slug], "csv").headers["X-Feed-Cursor"] for slug in ("mycert", "cisa")}
    assert world["krcert"].delete(OBJECTS + restricted["id"] + "/").status_code == 200

    assert withdrawal_refs(world["cisa"], since=cursors["cisa"], include="withdrawn") == [restricted["id"]]
    assert (
        feed(world["cisa"], "ip.txt", since=cursors["cisa"], include="withdrawn").get_data(as_text=True)
        == "203.0.113.3\n"
    )
    assert withdrawal_refs(world["krcert"], include="withdrawn") == [restricted["id"]]  # the originator's own view
    for fmt in ("stix", "csv", "ecs", "ip.txt"):
        body = feed(world["mycert"], fmt, since=cursors["mycert"], include="withdrawn").get_data(as_text=True)
        assert restricted["id"] not in body and "203.0.113.3" not in body, fmt
    for slug in ("cisa", "mycert", "krcert"):
        assert_absent(world[slug], restricted["id"])

    assert world["krcert"].delete(OBJECTS + open_one["id"] + "/").status_code == 200
    assert withdrawal_refs(world["mycert"], since=cursors["mycert"], include="withdrawn") == [open_one["id"]]
    with hub.session(write=False) as s:
        rows = s.execute(
            select(m.Partner.slug, m.Withdrawal.stix_id, m.Withdrawal.reason)
            .join(m.Partner, m.Partner.id == m.Withdrawal.partner_id)
            .order_by(m.Withdrawal.position)
        ).all()
    assert sorted(rows) == sorted(
        [
            ("cisa", restricted["id"], "deleted"),
            ("krcert", restricted["id"], "deleted"),
            ("cisa", open_one["id"], "deleted"),
            ("krcert", open_one["id"], "deleted"),
            ("mycert", open_one["id"], "deleted"),
        ]
    )


def test_deleting_one_version_withdraws_nothing_while_another_stays_visible(world, hub):
    v1 = ind(5, "192.0.2.5", markings=[GREEN])
    v2 = ind(5, "192.0.2.5", markings=[GREEN], modified="2024-06-01T00:00:00.000Z")
    world["krcert"].post(OBJECTS, [v1, v2])
    r = world["krcert"].delete(OBJECTS + v1["id"] + "/", {"match[version]": f.CLOCK})
    assert r.status_code == 200
    assert world["mycert"].get(OBJECTS + v1["id"] + "/").status_code == 200
    assert withdrawal_refs(world["mycert"], include="withdrawn") == []


def test_a_withdrawal_describes_only_a_version_the_partner_saw(world, hub):
    """The newest version is AMBER with another value: a GREEN partner's removal names the GREEN value."""
    apply(hub, "GREEN")
    seen = ind(6, "192.0.2.6", markings=[GREEN])
    unseen = ind(6, "192.0.2.66", markings=[AMBER], modified="2024-06-01T00:00:00.000Z")
    world["krcert"].post(OBJECTS, [seen, unseen])
    assert world["krcert"].delete(OBJECTS + seen["id"] + "/").status_code == 200
    body = feed(world["mycert"], "csv", include="withdrawn").get_data(as_text=True)
    assert "192.0.2.6," in body and "192.0.2.66" not in body


def test_admin_panel_changes_and_suspension(world, hub):
    from hub.admin import data_accounts as data

    world["krcert"].post(OBJECTS, [ind(7, "192.0.2.7", markings=[AMBER])])
    with hub.session() as s:
        data.set_partner_active(s, "alice", "mycert", False)
    with hub.session() as s:
        data.set_partner_active(s, "alice", "mycert", True)
    assert withdrawal_refs(world["mycert"], include="withdrawn") == []  # suspension alone withdraws nothing
    with hub.session() as s:
        values = {**data.partner_values(data.get_partner(s, "mycert")), "clearance": "GREEN"}
        data.save_partner(s, "alice", "mycert", values)
    assert withdrawal_refs(world["mycert"], include="withdrawn") == [ind(7, "")["id"]]
