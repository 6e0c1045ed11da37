"""Re-posting another partner's object: no laundering, no existence oracle, no reclaiming after delete.

An object id belongs to the partner that first published it, for good. Another partner's post under
that id either is refused (when the poster can see the object: a copy would widen its audience) or
becomes the poster's own quarantined copy, visible to the poster alone and flagged to administrators
(when it cannot: the answer is then exactly that of a never-held id).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub import models as m
from hub.policy import TLP
from tests import factories as f
from tests.security.conftest import AMBER

ONLY_ORIGINATOR = "only the originator may publish under this object id"


@pytest.fixture(scope="module")
def narrow(world):
    """alpha (krcert) publishes an AMBER and an unmarked object where only it and cisa read; all may read 'wide'."""
    world.new_collection(
        "narrow", readers=["partner:krcert", "partner:cisa"], writers=["partner:krcert"], default_tlp=TLP.AMBER
    )
    world.new_collection("wide", default_tlp=TLP.GREEN)
    objs = {"amber": f.indicator(9500, markings=[AMBER]), "unmarked": f.indicator(9501)}
    status = world.client("krcert").post(world.url("narrow"), list(objs.values())).get_json()
    assert status["success_count"] == 2, status
    return objs


def ids_in(world, slug: str, alias: str) -> set[str]:
    response = world.client(slug).get(world.url(alias), {"match[version]": "all"})
    assert response.status_code == 200, response.get_data()
    return {o["id"] for o in response.get_json().get("objects", [])}


@pytest.mark.parametrize("which", ["amber", "unmarked"])
def test_a_reader_cannot_launder_a_copy_into_a_wider_collection(world, narrow, which):
    obj = narrow[which]
    status = world.client("cisa").post(world.url("wide"), [obj]).get_json()
    assert status["success_count"] == 0 and ONLY_ORIGINATOR in status["failures"][0]["message"]
    for slug in ("singcert", "mycert", "cisa", "krcert"):
        assert obj["id"] not in ids_in(world, slug, "wide"), slug


def test_an_unmarked_object_keeps_its_first_effective_tlp_when_its_originator_reposts_it(world, narrow):
    """Published where the default was AMBER, it stays AMBER: a GREEN-default collection does not lower it."""
    status = world.client("krcert").post(world.url("wide"), [narrow["unmarked"]]).get_json()
    assert status["success_count"] == 1
    assert narrow["unmarked"]["id"] not in ids_in(world, "mycert", "wide")  # GREEN clearance
    assert narrow["unmarked"]["id"] in ids_in(world, "singcert", "wide")  # AMBER clearance
    with world.hub.session(write=False) as s:
        tlps = set(s.scalars(select(m.ObjectVersion.tlp).where(m.ObjectVersion.stix_id == narrow["unmarked"]["id"])))
    assert tlps == {int(TLP.AMBER)}


def test_an_out_of_band_copy_is_the_posters_quarantined_copy(world, narrow):
    """singcert cannot see alpha's object: its post looks exactly like a post of a never-held id, to it."""
    copy, fresh = narrow["amber"], f.indicator(9502, markings=[AMBER])
    posts = [world.client("singcert").post(world.url("wide"), [obj]).get_json() for obj in (copy, fresh)]
    assert [(p["success_count"], p["failure_count"]) for p in posts] == [(1, 0), (1, 0)]
    assert {copy["id"], fresh["id"]} <= ids_in(world, "singcert", "wide")
    for slug in ("cisa", "krcert"):
        assert copy["id"] not in ids_in(world, slug, "wide"), slug
        assert fresh["id"] in ids_in(world, slug, "wide"), slug
    with world.hub.session(write=False) as s:
        rows = s.execute(
            select(m.ObjectVersion.originator_id, m.ObjectVersion.quarantined)
            .join(m.Collection, m.Collection.id == m.ObjectVersion.collection_id)
            .where(m.ObjectVersion.stix_id == copy["id"], m.Collection.alias == "wide")
        ).all()
        singcert = s.execute(select(m.Partner.id).where(m.Partner.slug == "singcert")).scalar_one()
        flagged = set(s.scalars(select(m.AuditEvent.target).where(m.AuditEvent.action == "object.quarantined")))
    assert rows == [(singcert, True)] and copy["id"] in flagged


def test_a_case_variant_id_does_not_shadow_the_originators_object(world, narrow):
    obj = narrow["unmarked"]
    kind, uid = obj["id"].split("--")
    shadow = {**obj, "id": f"{kind}--{uid.upper()}", "modified": "2024-06-01T00:00:00.000Z", "revoked": True}
    world.client("singcert").post(world.url("wide"), [shadow])
    for slug in ("cisa", "krcert", "mycert"):
        got = world.client(slug).get(world.url("wide"), {"match[version]": "all"}).get_json().get("objects", [])
        assert not [o for o in got if o["id"].lower() == obj["id"] and o.get("revoked")], slug


def test_a_deleted_id_keeps_its_originator(world):
    kr, cisa = world.client("krcert"), world.client("cisa")
    world.new_collection("tomb")
    obj = f.indicator(9510)
    assert kr.post(world.url("tomb"), [obj]).get_json()["success_count"] == 1
    assert kr.delete(world.url("tomb", f"objects/{obj['id']}/")).status_code == 200
    # cisa received it before the delete; re-posting its copy does not bring it back for anyone else.
    assert cisa.post(world.url("tomb"), [obj]).get_json()["success_count"] == 1
    newer = {**obj, "modified": "2024-07-01T00:00:00.000Z", "name": "hijacked"}
    assert world.client("singcert").post(world.url("tomb"), [newer]).get_json()["success_count"] == 1
    assert obj["id"] not in ids_in(world, "krcert", "tomb") and obj["id"] not in ids_in(world, "mycert", "tomb")
    with world.hub.session(write=False) as s:
        krcert = s.execute(select(m.Partner.id).where(m.Partner.slug == "krcert")).scalar_one()
        credited = set(s.scalars(select(m.ObjectVersion.originator_id).where(m.ObjectVersion.stix_id == obj["id"])))
    assert krcert not in credited
    # Only the originator brings it back.
    assert kr.post(world.url("tomb"), [obj]).get_json()["success_count"] == 1
    assert obj["id"] in ids_in(world, "mycert", "tomb")
    mine = world.client("mycert").get(world.url("tomb", f"objects/{obj['id']}/"), {"match[version]": "all"})
    assert mine.get_json()["objects"] == [obj]


def upper_case(obj: dict) -> dict:
    kind, uid = obj["id"].split("--")
    return {**obj, "id": f"{kind}--{uid.upper()}"}


@pytest.mark.parametrize("which", ["amber", "unmarked"])
def test_a_reader_cannot_launder_a_copy_under_a_case_variant_id(world, narrow, which):
    """The reader sees alpha's object under its lower-case id: the upper-case spelling is the same id."""
    variant = upper_case(narrow[which])
    status = world.client("cisa").post(world.url("wide"), [variant]).get_json()
    assert status["success_count"] == 0 and ONLY_ORIGINATOR in status["failures"][0]["message"], status
    for slug in ("mycert", "cisa", "krcert"):  # singcert holds a quarantined copy of its own (above)
        assert variant["id"] not in ids_in(world, slug, "wide"), slug


def test_a_case_variant_keeps_the_first_effective_tlp_of_the_id(world, narrow):
    """alpha's own re-post under another spelling is still the version it first published at AMBER."""
    world.new_collection("wide-variant", default_tlp=TLP.GREEN)
    variant = upper_case(narrow["unmarked"])
    status = world.client("krcert").post(world.url("wide-variant"), [variant]).get_json()
    assert status["success_count"] == 1, status
    assert variant["id"] not in ids_in(world, "mycert", "wide-variant")  # GREEN clearance
    assert variant["id"] in ids_in(world, "singcert", "wide-variant")  # AMBER clearance
