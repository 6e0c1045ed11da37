"""Side channels: what a partner could learn about writes it cannot see from cursors, bundle ids and dates.

A partner must not tell when others write objects hidden from it, nor count them: the flat feeds'
``X-Feed-Cursor`` and the STIX feed's bundle id come only from what the partner receives, and
consecutive ``date_added`` values lie a random 1-64 µs apart, so a gap does not count what lies in it.
"""

from __future__ import annotations

import random

import orjson

from hub import stix
from hub.policy import TLP
from tests import factories as f
from tests.security.conftest import AMBER, GREEN, feed

FORMATS = ("stix", "csv", "ecs", "ip.txt")


def _feeds(world, collection: str, **params: str) -> dict:
    return {fmt: feed(world, "mycert", world.ids[collection], fmt, params) for fmt in FORMATS}


def _bundle_id(response) -> str:  # type: ignore[no-untyped-def]
    return orjson.loads(response.get_data())["id"]


def test_feed_cursor_and_bundle_id_ignore_writes_the_partner_cannot_see(world):
    world.new_collection("side-feeds", max_tlp=TLP.RED, allow_warninglisted=True)  # documentation-range values
    krcert = world.client("krcert")
    assert krcert.post(world.url("side-feeds"), [f.indicator(1000, markings=[GREEN])]).get_json()["success_count"] == 1
    before = _feeds(world, "side-feeds")
    cursor = before["ip.txt"].headers["X-Feed-Cursor"]
    since_before = _feeds(world, "side-feeds", since=cursor)

    # krcert writes objects mycert (cleared for GREEN) cannot see: nothing mycert can read changes.
    hidden = [f.indicator(1001 + i, markings=[AMBER]) for i in range(3)]
    assert krcert.post(world.url("side-feeds"), hidden).get_json()["success_count"] == 3
    after, since_after = _feeds(world, "side-feeds"), _feeds(world, "side-feeds", since=cursor)
    for fmt in FORMATS:
        for old, new in ((before[fmt], after[fmt]), (since_before[fmt], since_after[fmt])):
            assert new.status_code == 200
            assert new.headers["X-Feed-Cursor"] == old.headers["X-Feed-Cursor"], fmt
            assert new.get_data() == old.get_data(), fmt
    assert _bundle_id(after["stix"]) == _bundle_id(before["stix"])
    assert since_after["ip.txt"].headers["X-Feed-Cursor"] == cursor

    # A write it can see moves both.
    assert krcert.post(world.url("side-feeds"), [f.indicator(1010, markings=[GREEN])]).get_json()["success_count"] == 1
    moved = _feeds(world, "side-feeds")
    assert stix.parse_filter_timestamp(moved["ip.txt"].headers["X-Feed-Cursor"]) > stix.parse_filter_timestamp(cursor)
    assert _bundle_id(moved["stix"]) != _bundle_id(before["stix"])
    assert moved["ip.txt"].get_data(as_text=True).split() == ["198.51.100.0", "198.51.100.10"]


def _date_added(world, slug: str, collection: str) -> dict[str, int]:
    """Each object's date_added in a partner's manifest, in microseconds."""
    entries = world.client(slug).get(world.url(collection, "manifest/")).get_json().get("objects", [])
    return {e["id"]: stix.parse_filter_timestamp(e["date_added"]) for e in entries}


def test_date_added_gaps_do_not_count_hidden_objects(world):
    world.new_collection("side-dates", max_tlp=TLP.RED)
    rng = random.Random(7)
    objects, hidden_before = [], []
    hidden_run = 0
    for n in range(2000, 2090):
        if rng.random() < 0.5:
            objects.append(f.indicator(n, markings=[AMBER]))
            hidden_run += 1
        else:
            objects.append(f.indicator(n, markings=[GREEN]))
            hidden_before.append(hidden_run)
            hidden_run = 0
    status = world.client("krcert").post(world.url("side-dates"), objects).get_json()
    assert status["success_count"] == len(objects), status

    everything = _date_added(world, "krcert", "side-dates")
    stamps = [everything[o["id"]] for o in objects]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)  # unique, increasing in posting order

    seen = _date_added(world, "mycert", "side-dates")
    visible = [o["id"] for o in objects if o["id"] in seen]
    assert len(visible) == len(hidden_before) > 30
    gaps = [seen[b] - seen[a] for a, b in zip(visible, visible[1:], strict=False)]
    # With one microsecond per version, each gap would be exactly one more than the hidden objects in it.
    exact = sum(gap == hidden + 1 for gap, hidden in zip(gaps, hidden_before[1:], strict=True))
    assert exact <= len(gaps) // 5, (exact, len(gaps))
    # Visible versions posted back to back no longer sit one microsecond apart.
    assert len({gap for gap, hidden in zip(gaps, hidden_before[1:], strict=True) if hidden == 0}) > 3
