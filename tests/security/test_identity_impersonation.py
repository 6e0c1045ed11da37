"""A partner tries to be credited as another: look-alike identities and borrowed ``created_by_ref``.

An identity may not claim another registered partner (the hub's ``x_cti_hub_partner`` binding, or a
name equal to another partner's name or id ignoring case and spaces), and ``created_by_ref`` may name
only the publisher's registered identity, an identity it published, the hub's reference identities,
or an identity id nobody published (which it then reserves).
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from hub import models as m
from hub.ids import HUB_NAMESPACE
from tests import factories as f

COUNTER = iter(range(7400, 7700))


def identity(name: str, **extra) -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": "identity",
        "spec_version": "2.1",
        "id": f"identity--{uuid.uuid4()}",
        "created": f.CLOCK,
        "modified": f.CLOCK,
        "name": name,
        "identity_class": "organization",
        **extra,
    }


def registered(world, slug: str) -> dict:  # type: ignore[no-untyped-def]
    """The hub's reference identity of a partner, as every partner reads it in the reference collection."""
    wanted = f"identity--{uuid.uuid5(HUB_NAMESPACE, slug)}"
    answer = world.client("singcert").get(world.url("reference", f"objects/{wanted}/")).get_json()
    return answer["objects"][0]


def post(world, slug: str, alias: str, objs: list[dict]) -> dict:  # type: ignore[no-untyped-def]
    return world.client(slug).post(world.url(alias), objs).get_json()


def readers(world, alias: str, stix_id: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        slug
        for slug in ("krcert", "cisa", "singcert", "mycert")
        if world.client(slug).get(world.url(alias, f"objects/{stix_id}/")).status_code == 200
    }


def test_a_copy_of_another_partners_reference_identity_is_refused(world):
    copy = {**registered(world, "krcert"), "id": f"identity--{uuid.uuid4()}"}
    assert copy["x_cti_hub_partner"] == "krcert"
    indicator = f.indicator(next(COUNTER), created_by=copy["id"])
    status = post(world, "singcert", "shared", [copy, indicator])
    assert status["success_count"] == 0, status
    messages = {x["id"]: x["message"] for x in status["failures"]}
    assert "claims partner 'krcert'" in messages[copy["id"]]
    assert messages[indicator["id"]] == f"created_by_ref {copy['id']} was refused in this envelope"


@pytest.mark.parametrize("name", ["KRCERT", "krcert", " K r C E R T ", "CISA", "c i s a"])
def test_an_identity_named_like_another_partner_is_refused(world, name):
    status = post(world, "singcert", "shared", [identity(name)])
    assert status["success_count"] == 0 and "is named like partner" in status["failures"][0]["message"]


def test_claiming_oneself_and_naming_ones_own_teams_is_fine(world):
    team = identity("SingCERT malware analysis team", x_cti_hub_partner="singcert")
    same_name = identity("S I N G C E R T")
    indicator = f.indicator(next(COUNTER), created_by=team["id"])
    # The identity comes after the object that names it: the envelope is taken as a whole.
    status = post(world, "singcert", "shared", [indicator, team, same_name])
    assert status["success_count"] == 3, status
    assert readers(world, "shared", indicator["id"]) >= {"krcert", "cisa", "singcert"}


def test_created_by_ref_cannot_borrow_another_partners_published_identity(world):
    lab = identity("Korea malware lab")
    assert post(world, "krcert", "shared", [lab])["success_count"] == 1
    indicator = f.indicator(next(COUNTER), created_by=lab["id"])
    status = post(world, "singcert", "shared", [indicator])
    assert status["success_count"] == 0 and "another partner's identity" in status["failures"][0]["message"]
    with world.hub.session(write=False) as s:
        assert s.scalars(select(m.ObjectVersion).where(m.ObjectVersion.stix_id == indicator["id"])).all() == []


def test_an_identity_the_poster_cannot_see_is_like_one_never_published(world):
    """Naming a hidden identity answers exactly as naming a fresh id: the object is the poster's alone."""
    hidden_lab = identity("ROK-US joint cell")
    assert post(world, "krcert", "rokus", [hidden_lab])["success_count"] == 1
    borrowing = f.indicator(next(COUNTER), created_by=hidden_lab["id"])
    fresh = f.indicator(next(COUNTER), created_by=f"identity--{uuid.uuid4()}")
    answers = [post(world, "singcert", "shared", [obj]) for obj in (borrowing, fresh)]
    assert [(a["success_count"], a["failure_count"]) for a in answers] == [(1, 0), (1, 0)]
    assert readers(world, "shared", borrowing["id"]) == {"singcert"}  # quarantined: nobody else is misled
    assert readers(world, "shared", fresh["id"]) == {"krcert", "cisa", "singcert", "mycert"}
    with world.hub.session(write=False) as s:
        flagged = s.scalars(
            select(m.AuditEvent).where(
                m.AuditEvent.action == "object.quarantined", m.AuditEvent.target == borrowing["id"]
            )
        ).all()
    assert len(flagged) == 1 and '"created_by_ref"' in flagged[0].detail


def test_an_identity_id_named_first_is_reserved_for_the_partner_naming_it(world):
    """Nobody can publish an identity later under the id a partner's objects name, and be credited."""
    claimed = f"identity--{uuid.uuid4()}"
    indicator = f.indicator(next(COUNTER), created_by=claimed)
    assert post(world, "singcert", "shared", [indicator])["success_count"] == 1
    squatter = {**identity("Singapore CERT (real)"), "id": claimed}
    assert post(world, "krcert", "shared", [squatter])["success_count"] == 1  # as for any id it cannot see
    assert readers(world, "shared", claimed) == {"krcert"}
    mine = {**identity("SingCERT threat team"), "id": claimed}
    assert post(world, "singcert", "shared", [mine])["success_count"] == 1
    assert readers(world, "shared", claimed) >= {"cisa", "singcert"}
