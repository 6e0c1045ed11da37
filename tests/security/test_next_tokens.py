"""``next`` tokens: forged, tampered, replayed by another partner, or replayed after access was lost.

A token the hub cannot use is ignored: the request is answered with its own filters from the
start, exactly as if no token had been sent, and the answer says why in X-CTI-Hub-Next-Ignored.
Nothing from such a token (position, filters) is ever used.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from sqlalchemy import update

from hub import models as m
from hub.policy import TLP
from hub.store import clock, snapshots
from hub.taxii import cursor
from tests import factories as f
from tests.security.conftest import AMBER, GREEN

IGNORED = "X-CTI-Hub-Next-Ignored"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def paged(world):
    """Three objects cisa may read on every page; returns cisa's first page token on `shared`."""
    objs = [f.indicator(n, markings=[GREEN]) for n in (910, 911, 912)]
    assert world.client("krcert").post(world.url("shared"), objs).get_json()["success_count"] == 3
    first = world.client("cisa").get(world.url("shared"), {"limit": 1}).get_json()
    assert first["more"] is True
    return first["next"]


def assert_ignored(
    world, slug: str, path: str, token: str, reason: str | None = None, params: dict | None = None
) -> None:
    """The request with ``token`` answers exactly what the same request without it answers."""
    client = world.client(slug)
    with_token = client.get(path, {**(params or {}), "next": token})
    without = client.get(path, params or {})
    assert with_token.status_code == 200, with_token.get_data()
    assert with_token.get_data() == without.get_data()
    assert with_token.headers[IGNORED] == (reason or with_token.headers[IGNORED])
    assert IGNORED not in without.headers
    for header in ("X-TAXII-Date-Added-First", "X-TAXII-Date-Added-Last"):
        assert with_token.headers[header] == without.headers[header]


@pytest.mark.parametrize(
    "token",
    [
        "x",
        ".",
        "..",
        "a.b",
        "a.b.c",
        "%%%.%%%",
        "=" * 10 + "." + "=" * 10,
        "A" * 5000,
        "\u00e9.\u00e9",
        _b64(orjson.dumps([1, "c", "objects", {}, 0, 0])) + ".",
        _b64(orjson.dumps([1, "c", "objects", {}, 0, 0])) + "." + _b64(b"\0" * 16),
    ],
)
def test_forged_tokens_are_ignored(world, token):
    assert_ignored(world, "singcert", world.url("shared"), token)


def test_a_token_signed_with_another_secret_is_ignored(world, paged):
    payload, _ = paged.split(".")
    pos = cursor.Position(*orjson.loads(_unb64(payload)))
    forged = cursor.encode("not-the-hub-secret", pos)
    assert_ignored(world, "cisa", world.url("shared"), forged, "signature")


@pytest.mark.parametrize("field", [0, 1, 2, 3, 4, 5])
def test_tampering_with_any_field_breaks_the_signature(world, paged, field):
    payload, mac = paged.split(".")
    values = orjson.loads(_unb64(payload))
    values[field] = {0: 1, 1: world.ids["rokus"], 2: "manifest", 3: {"types": ["malware"]}, 4: 0, 5: 0}[field]
    tampered = _b64(orjson.dumps(values, option=orjson.OPT_SORT_KEYS)) + "." + mac
    assert_ignored(world, "cisa", world.url("shared"), tampered, "signature")


def test_flipping_any_byte_is_ignored(world, paged):
    cisa = world.client("cisa")
    for i in range(0, len(paged), 7):
        if paged[i] == ".":
            continue
        flipped = paged[:i] + ("A" if paged[i] != "A" else "B") + paged[i + 1 :]
        r = cisa.get(world.url("shared"), {"next": flipped})
        # Base64 padding bits may absorb a change in the last character of a part: then it is the same token.
        if IGNORED in r.headers:
            assert_ignored(world, "cisa", world.url("shared"), flipped)


def test_another_partner_cannot_replay_a_token(world, paged):
    assert_ignored(world, "singcert", world.url("shared"), paged, "partner")
    cisa = world.client("cisa").get(world.url("shared"), {"next": paged})
    assert cisa.status_code == 200 and IGNORED not in cisa.headers


def test_another_key_of_the_same_partner_may_continue(world, paged):
    second = f.Client(world.app.test_client(), f.key_for(world.hub, "cisa"))
    r = second.get(world.url("shared"), {"next": paged})
    assert r.status_code == 200 and IGNORED not in r.headers


@pytest.mark.parametrize("suffix", ["manifest/", "objects/{id}/", "objects/{id}/versions/"])
def test_a_token_is_bound_to_its_endpoint(world, paged, suffix):
    path = world.url("shared", suffix.format(id=world.visible["id"]))
    assert_ignored(world, "cisa", path, paged, "endpoint")


def test_a_token_is_bound_to_its_collection(world, paged):
    assert_ignored(world, "cisa", world.url("rokus"), paged, "collection")


def test_a_token_is_bound_to_its_filters(world, paged):
    assert_ignored(world, "cisa", world.url("shared"), paged, "filters", {"match[type]": "malware"})
    assert_ignored(world, "cisa", world.url("shared"), paged, "filters", {"added_after": "2020-01-01T00:00:00Z"})


def test_an_expired_token_is_ignored(world, paged, monkeypatch):
    app = world.make_app(next_ttl_days=1)
    issued = clock.now_us()
    monkeypatch.setattr(clock, "now_us", lambda: issued + 86_400_000_000 + 1_000_000)  # a day and a second on
    client = f.Client(app.test_client(), world.keys["cisa"])
    with_token, without = client.get(world.url("shared"), {"next": paged}), client.get(world.url("shared"))
    assert with_token.status_code == 200 and with_token.headers[IGNORED] == "expired"
    assert with_token.get_data() == without.get_data()


def test_replay_after_losing_read_access_to_the_collection(world):
    kr = world.client("krcert")
    lost = world.new_collection("lost", readers=["group:rokus"], writers=["group:rokus"])
    objs = [f.indicator(n, markings=[GREEN]) for n in (920, 921, 922)]
    assert kr.post(world.url("lost"), objs).get_json()["success_count"] == 3
    token = kr.get(world.url("lost"), {"limit": 1}).get_json()["next"]
    with world.hub.session() as s:
        s.execute(
            update(m.Collection).where(m.Collection.uuid == lost).values(readers="partner:cisa", writers="partner:cisa")
        )
        snapshots.bump_rules(s)
    r = kr.get(world.url("lost"), {"next": token})
    assert r.status_code == 404
    assert r.get_data() == kr.get(world.url("lost")).get_data()


def test_replay_after_losing_clearance_reapplies_the_rules(world):
    kr = world.client("krcert")
    world.new_collection("cleared")
    world.new_partner("vncert", TLP.RED)
    objs = [f.indicator(930, markings=[GREEN])] + [f.indicator(n, markings=[AMBER]) for n in (931, 932)]
    assert kr.post(world.url("cleared"), objs).get_json()["success_count"] == 3
    reader = world.client("vncert")
    page = reader.get(world.url("cleared"), {"limit": 1}).get_json()
    assert [o["id"] for o in page["objects"]] == [objs[0]["id"]] and page["more"]
    with world.hub.session() as s:
        s.execute(update(m.Partner).where(m.Partner.slug == "vncert").values(clearance=int(TLP.GREEN)))
        snapshots.bump_rules(s)
    rest = reader.get(world.url("cleared"), {"next": page["next"], "limit": 100}).get_json()
    assert rest["more"] is False and "objects" not in rest


def test_replay_after_the_partner_was_suspended(world, paged):
    world.new_partner("phcert")
    token = world.client("phcert").get(world.url("shared"), {"limit": 1}).get_json()["next"]
    with world.hub.session() as s:
        s.execute(update(m.Partner).where(m.Partner.slug == "phcert").values(active=False))
        snapshots.bump_rules(s)
    assert world.client("phcert").get(world.url("shared"), {"next": token}).status_code == 401
