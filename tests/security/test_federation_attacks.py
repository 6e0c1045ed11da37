"""A peer hub (partner kind ``hub``) with a valid key: what it must never receive, and what it must never change.

Federation rule 7 (``hub/policy.py``): AMBER+STRICT, RED and ``no_federation`` objects never leave through
a peer hub, even when a sharing marking names the peer. Every read path is tried: objects, object,
versions, manifest, paging tokens (its own and those of partners that may see more) and the flat feeds.
A peer relays objects that others created, so it may name their ``created_by_ref``; it still may not
change, revoke or delete the objects of local partners.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from hub import accounts
from hub import models as m
from hub.errors import NotFound
from hub.ids import HUB_NAMESPACE, SHARING_EXTENSION_ID
from hub.store import snapshots
from tests import factories as f
from tests.security.conftest import AMBER, GREEN, RED, feed
from tests.security.probes import ENDPOINTS, absent_like, assert_indistinguishable

STRICT = "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"
FORMATS = ("stix", "csv", "ecs", "ip.txt", "domain.txt", "url.txt", "sha256.txt")
KRCERT = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'krcert')}"


@pytest.fixture(scope="module")
def fed(world) -> dict:
    """A peer hub that every sharing marking names, and krcert's objects at every level of restriction."""
    world.new_partner("peerhub", kind="hub")
    names_peer = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'names-peerhub')}"
    no_fed = f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, 'no-federation')}"
    no_fed_marking = f.sharing_marking(no_fed, partners=["peerhub", "cisa"])
    no_fed_marking["extensions"][SHARING_EXTENSION_ID]["no_federation"] = True
    objs = {
        "green": f.indicator(8001, markings=[GREEN], created_by=KRCERT),
        "amber": f.indicator(8002, markings=[AMBER, names_peer], created_by=KRCERT),
        "strict": f.indicator(8003, markings=[STRICT, names_peer]),
        "red": f.indicator(8004, markings=[RED, names_peer]),
        "no_fed": f.indicator(8005, markings=[GREEN, no_fed]),
        "no_fed_amber": f.indicator(8006, markings=[AMBER, no_fed, names_peer]),
    }
    status = (
        world.client("krcert")
        .post(
            world.url("shared"),
            [f.sharing_marking(names_peer, partners=["peerhub", "cisa"]), no_fed_marking, *objs.values()],
        )
        .get_json()
    )
    assert status["success_count"] == 2 + len(objs), status.get("failures")
    forbidden = [objs[k]["id"] for k in ("strict", "red", "no_fed", "no_fed_amber")]
    return {"objects": objs, "forbidden": forbidden, "allowed": [objs["green"]["id"], objs["amber"]["id"]]}


def listed(world, slug: str, suffix: str, params: dict) -> set[str]:
    response = world.client(slug).get(world.url("shared", suffix), {**params, "limit": 1000})
    assert response.status_code == 200
    return {o["id"] for o in response.get_json().get("objects", [])}


def test_the_rule_holds_for_partners_of_the_same_clearance(world, fed):
    # cisa (a CERT named by the same markings) receives everything: the peer's refusals come from rule 7 alone.
    assert set(fed["forbidden"] + fed["allowed"]) <= listed(world, "cisa", "objects/", {})


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"match[version]": "all"},
        {"match[type]": "indicator"},
        {"match[version]": "first"},
        {"added_after": "2000-01-01T00:00:00Z"},
    ],
    ids=str,
)
@pytest.mark.parametrize("suffix", ["objects/", "manifest/"])
def test_listings_leave_out_what_never_federates(world, fed, suffix, params):
    got = listed(world, "peerhub", suffix, params)
    assert set(fed["allowed"]) <= got
    assert not got & set(fed["forbidden"])
    by_id = listed(world, "peerhub", suffix, {**params, "match[id]": ",".join(fed["forbidden"] + fed["allowed"])})
    assert by_id == set(fed["allowed"])


@pytest.mark.parametrize("name,endpoint", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
@pytest.mark.parametrize("which", ["strict", "red", "no_fed", "no_fed_amber"])
def test_each_endpoint_answers_as_for_an_absent_object(world, fed, which, name, endpoint):
    peer = world.client("peerhub")
    hidden_id = fed["objects"][which]["id"]
    absent_id = absent_like(hidden_id)
    path, params = endpoint(world, hidden_id)
    absent_path, absent_params = endpoint(world, absent_id)
    assert_indistinguishable(peer.get(path, params), peer.get(absent_path, absent_params), hidden_id, absent_id)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("params", [{}, {"include": "withdrawn"}], ids=str)
def test_feeds_leave_out_what_never_federates(world, fed, fmt, params):
    body = feed(world, "peerhub", "shared", fmt, params).get_data(as_text=True)
    for key in ("strict", "red", "no_fed", "no_fed_amber"):
        obj = fed["objects"][key]
        assert obj["id"] not in body and obj["name"] not in body, (fmt, key)
    if fmt in ("stix", "csv", "ecs"):
        assert all(i in body for i in fed["allowed"])


def pages(world, slug: str, suffix: str = "objects/") -> list[dict]:
    """The first page and the ``next`` token of a one-object-per-page walk."""
    response = world.client(slug).get(world.url("shared", suffix), {"limit": 1, "match[version]": "all"})
    body = response.get_json()
    assert body.get("more") and body.get("next"), body
    return body


@pytest.mark.parametrize("owner", ["cisa", "krcert"])
@pytest.mark.parametrize("suffix", ["objects/", "manifest/"])
def test_tokens_of_partners_who_see_more_are_useless_to_a_peer(world, fed, owner, suffix):
    token = pages(world, owner, suffix)["next"]
    response = world.client("peerhub").get(
        world.url("shared", suffix), {"limit": 1000, "match[version]": "all", "next": token}
    )
    assert response.status_code == 200, response.get_data()
    assert response.headers["X-CTI-Hub-Next-Ignored"] == "partner"
    assert not set(fed["forbidden"]) & {o["id"] for o in (response.get_json() or {}).get("objects", [])}


def test_a_peers_own_tokens_reapply_rule_7(world, fed):
    """A partner turned into a peer hub (as an operator might) mid-walk gets nothing that never federates."""
    secret = world.new_partner("turncoat")
    client = f.Client(world.app.test_client(), secret)
    url = world.url("shared")
    first = client.get(url, {"limit": 1, "match[version]": "all"}).get_json()
    assert first["more"]
    with world.hub.session() as s:
        s.execute(update(m.Partner).where(m.Partner.slug == "turncoat").values(kind="hub"))
        snapshots.bump_rules(s)
    seen, body = set(), first
    for _ in range(1000):
        if not body.get("more"):
            break
        body = client.get(url, {"limit": 50, "next": body["next"]}).get_json()
        seen |= {o["id"] for o in body.get("objects", [])}
    assert fed["objects"]["green"]["id"] in seen | {o["id"] for o in first["objects"]}
    assert not seen & set(fed["forbidden"])


# --------------------------------------------------------------------- a peer may relay, not overwrite


def later(obj: dict, **changes) -> dict:  # type: ignore[no-untyped-def]
    return {**obj, "modified": "2025-01-01T00:00:00.000Z", **changes}


@pytest.mark.parametrize(
    "change", [{}, {"revoked": True}, {"name": "hijacked"}, {"object_marking_refs": [GREEN]}], ids=str
)
def test_a_peer_cannot_add_versions_to_or_revoke_a_local_partners_object(world, fed, change):
    original = fed["objects"]["amber"]
    status = world.client("peerhub").post(world.url("shared"), [later(original, **change)]).get_json()
    assert status["success_count"] == 0 and "originator" in status["failures"][0]["message"], status
    versions = world.client("krcert").get(world.url("shared", f"objects/{original['id']}/versions/")).get_json()
    assert versions["versions"] == [original["modified"]]


def test_a_peer_cannot_replace_a_version_or_delete_it(world, fed):
    original = fed["objects"]["green"]
    status = world.client("peerhub").post(world.url("shared"), [{**original, "name": "replaced"}]).get_json()
    assert status["success_count"] == 0
    response = world.client("peerhub").delete(world.url("shared", f"objects/{original['id']}/"))
    assert response.status_code in (403, 404)
    got = world.client("krcert").get(world.url("shared", f"objects/{original['id']}/")).get_json()
    assert got["objects"] == [original]


def test_relaying_an_identical_copy_places_nothing_in_a_new_collection(world, fed):
    original = fed["objects"]["green"]
    world.new_collection("relay")
    status = world.client("peerhub").post(world.url("relay"), [original]).get_json()
    # A copy in another collection would widen the object's audience: only its originator may place it.
    assert status["success_count"] == 0 and "only the originator" in status["failures"][0]["message"]
    with world.hub.session(write=False) as s:
        owners = set(
            s.scalars(
                select(m.Partner.slug)
                .join(m.ObjectVersion, m.ObjectVersion.originator_id == m.Partner.id)
                .where(m.ObjectVersion.stix_id == original["id"])
            )
        )
    assert owners == {"krcert"}
    assert world.client("krcert").get(world.url("relay")).get_json() == {"more": False}
    status = world.client("peerhub").post(world.url("relay"), [later(original, revoked=True)]).get_json()
    assert status["success_count"] == 0
    assert world.client("krcert").post(world.url("relay"), [later(original)]).get_json()["success_count"] == 1


# --------------------------------------------------------------------- claiming to be a hub


def test_a_partner_cannot_claim_to_be_a_hub(world, fed):
    hub_identity = f"identity--{uuid.uuid5(HUB_NAMESPACE, 'hub')}"
    for creator in (hub_identity, KRCERT, f"identity--{uuid.uuid5(HUB_NAMESPACE, 'peerhub')}"):
        obj = f.indicator(8100 + len(creator), created_by=creator, markings=[GREEN])
        status = world.client("singcert").post(world.url("shared"), [obj]).get_json()
        assert status["success_count"] == 0 and "created_by_ref" in status["failures"][0]["message"], creator
    # Headers or user names do not make a hub, and the hub's own partner never gets a key.
    spoofed = f.Client(world.app.test_client(), world.keys["singcert"], scheme="basic", user="hub")
    assert spoofed.get("/taxii2/").status_code == 401
    forged = world.client("singcert").get(
        world.url("shared"), {"limit": 1000}, headers={"X-Hub-Kind": "hub", "X-Forwarded-User": "peerhub"}
    )
    assert fed["objects"]["amber"]["id"] not in {o["id"] for o in forged.get_json().get("objects", [])}
    with world.hub.session() as s, pytest.raises(NotFound):
        accounts.create_key(s, world.hub.pepper, "hub")
    with world.hub.session(write=False) as s:
        assert s.scalar(select(m.Partner.kind).where(m.Partner.slug == "singcert")) == "cert"
