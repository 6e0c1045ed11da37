"""A partner's sharing marking names its audience: its definition must not reach anyone else.

krcert posts the marking ONLY_CISA ("share with: cisa") in the same envelope as a TLP:RED object
shared with cisa alone, into a collection every partner reads. Served to singcert or mycert, the
definition would tell them that a RED object is being shared with cisa. A sharing marking is served
only to its publisher, to the partners it admits and to the partners who see an object that uses it
(who are partners it admits); TLP and statement markings and the hub's group markings stay public.
"""

from __future__ import annotations

import uuid

import orjson
import pytest

from hub.admin import preview
from hub.ids import HUB_NAMESPACE, SHARING_EXTENSION_ID
from tests import factories as f
from tests.security.conftest import AMBER, GREEN, ONLY_CISA, feed
from tests.security.probes import ENDPOINTS, absent_like, assert_indistinguishable

OUTSIDERS = ("singcert", "mycert")


def marking_id(name: str) -> str:
    return f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, name)}"


def received(world, slug: str, alias: str = "shared") -> set[str]:  # type: ignore[no-untyped-def]
    """Every id a partner gets from a collection's listings (objects and manifest, all versions)."""
    client = world.client(slug)
    out: set[str] = set()
    for suffix in ("objects/", "manifest/"):
        body = client.get(world.url(alias, suffix), {"match[version]": "all"}).get_json()
        out |= {o["id"] for o in body.get("objects", [])}
    return out


def reads(world, slug: str, marking: str, alias: str = "shared") -> bool:  # type: ignore[no-untyped-def]
    """Whether the partner can fetch the marking's definition from a collection, on any path."""
    client = world.client(slug)
    single = client.get(world.url(alias, f"objects/{marking}/")).status_code == 200
    versions = client.get(world.url(alias, f"objects/{marking}/versions/")).status_code == 200
    assert single == versions == (marking in received(world, slug, alias)), (slug, marking)
    return single


@pytest.mark.parametrize("slug", OUTSIDERS)
def test_the_red_objects_marking_is_not_listed_to_other_readers(world, slug):
    assert world.red["id"] not in received(world, slug)
    assert ONLY_CISA not in received(world, slug)


@pytest.mark.parametrize("slug", OUTSIDERS)
@pytest.mark.parametrize(("name", "endpoint"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_the_marking_reads_like_an_absent_one(world, slug, name, endpoint):
    client = world.client(slug)
    absent = absent_like(ONLY_CISA)
    path, params = endpoint(world, ONLY_CISA)
    path2, params2 = endpoint(world, absent)
    assert_indistinguishable(client.get(path, params), client.get(path2, params2), ONLY_CISA, absent)


def test_publisher_and_admitted_partner_still_read_it(world):
    assert reads(world, "krcert", ONLY_CISA) and reads(world, "cisa", ONLY_CISA)


@pytest.mark.parametrize("fmt", ["stix", "csv", "ecs", "ip.txt", "domain.txt", "url.txt", "sha256.txt"])
def test_no_feed_carries_it(world, fmt):
    for slug in OUTSIDERS:
        response = feed(world, slug, "shared", fmt)
        assert response.status_code == 200 and ONLY_CISA.encode() not in response.get_data(), (slug, fmt)
    stix = feed(world, "cisa", "shared", "stix")
    assert ONLY_CISA in {o["id"] for o in orjson.loads(stix.get_data())["objects"]}


def test_a_marking_no_object_uses_yet_goes_to_its_audience_only(world):
    unused = marking_id("unused-rokus")
    status = world.client("krcert").post(world.url("shared"), [f.sharing_marking(unused, groups=["rokus"])])
    assert status.get_json()["success_count"] == 1
    assert reads(world, "cisa", unused)  # a member of the group it names
    assert not any(reads(world, slug, unused) for slug in OUTSIDERS)


def test_countries_and_exclusions_decide_as_for_objects(world):
    us_sg_not_sing = marking_id("us-sg-not-singcert")
    world.client("krcert").post(
        world.url("shared"), [f.sharing_marking(us_sg_not_sing, countries=["US", "SG"], exclude=["singcert"])]
    )
    assert reads(world, "cisa", us_sg_not_sing)
    assert not reads(world, "singcert", us_sg_not_sing)  # in a named country, but excluded


def test_the_markings_own_tlp_still_applies(world):
    amber_marking = {
        **f.sharing_marking(marking_id("amber-marking"), partners=["singcert", "mycert"]),
        "object_marking_refs": [AMBER],
    }
    assert world.client("krcert").post(world.url("shared"), [amber_marking]).get_json()["success_count"] == 1
    assert reads(world, "singcert", amber_marking["id"])  # admitted and cleared for AMBER
    assert not reads(world, "mycert", amber_marking["id"])  # admitted, but cleared for GREEN only


def test_tlp_statement_and_group_markings_stay_public(world):
    statement = {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": marking_id("statement"),
        "created": f.CLOCK,
        "definition_type": "statement",
        "definition": {"statement": "Copyright KrCERT"},
    }
    assert world.client("krcert").post(world.url("shared"), [statement]).get_json()["success_count"] == 1
    group = f"marking-definition--{uuid.uuid5(HUB_NAMESPACE, 'group:rokus')}"
    for slug in OUTSIDERS:
        assert reads(world, slug, statement["id"])
        assert reads(world, slug, group, "reference") and reads(world, slug, GREEN, "reference")


def test_an_outsider_cannot_use_it_any_more_than_an_absent_marking(world):
    attacker = world.client("singcert")
    absent = f"marking-definition--{uuid.uuid4()}"
    with_hidden = attacker.post(world.url("shared"), [f.indicator(7301, markings=[GREEN, ONLY_CISA])]).get_json()
    with_absent = attacker.post(world.url("shared"), [f.indicator(7302, markings=[GREEN, absent])]).get_json()
    assert with_hidden["success_count"] == with_absent["success_count"] == 0
    assert with_hidden["failures"][0]["message"].replace(ONLY_CISA, "X") == with_absent["failures"][0][
        "message"
    ].replace(absent, "X")


def test_federation_gets_it_only_when_named_and_allowed(world):
    world.new_partner("peerhub", kind="hub")
    named, no_fed = marking_id("names-peer"), marking_id("names-peer-no-federation")
    no_fed_marking = f.sharing_marking(no_fed, partners=["peerhub", "cisa"])
    no_fed_marking["extensions"][SHARING_EXTENSION_ID]["no_federation"] = True
    world.client("krcert").post(world.url("shared"), [f.sharing_marking(named, partners=["peerhub"]), no_fed_marking])
    assert reads(world, "peerhub", named)
    assert not reads(world, "peerhub", no_fed) and not reads(world, "peerhub", ONLY_CISA)
    assert reads(world, "cisa", no_fed)


def test_the_sharing_preview_says_who_gets_it_and_why(world):
    with world.hub.session(write=False) as s:
        snap = world.hub.snapshot(s)
        audience = preview.who_can_see(s, snap, ONLY_CISA)
    verdicts = {p.slug: v for a in audience for p, v in a.verdicts}
    assert verdicts["cisa"].allowed and verdicts["krcert"].allowed
    for slug in OUTSIDERS:
        assert not verdicts[slug].allowed
        assert f"does not admit {slug}" in str(verdicts[slug].decision)
