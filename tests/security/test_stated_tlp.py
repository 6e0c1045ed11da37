"""A marking that states a TLP under its own id holds objects to that TLP; it never fails open.

OpenCTI exports TLP levels as statement markings (``"TLP:RED"``), and a TLP 2.0 extension can sit on
any id. Either way the object goes out at the level stated (the strictest, where several are),
never at the collection's default.
"""

from __future__ import annotations

import uuid

import pytest

from tests import factories as f
from tests.security.conftest import GREEN, ONLY_CISA

TLP2_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
COUNTER = iter(range(7100, 7400))


def marking(**content) -> dict:  # type: ignore[no-untyped-def]
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": f"marking-definition--{uuid.uuid4()}",
        "created": f.CLOCK,
        **content,
    }


def statement(text: str, name: str | None = None) -> dict:
    return marking(name=name or text, definition_type="statement", definition={"statement": text})


def tlp2(value: str, name: str = "Custom TLP") -> dict:
    return marking(name=name, extensions={TLP2_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": value}})


STATED = [
    pytest.param(statement("TLP:RED"), "red", id="statement-red"),
    pytest.param(statement("tlp: amber+strict"), "amber+strict", id="statement-amber-strict-lower"),
    pytest.param(statement("custom", name="TLP:AMBER+STRICT"), "amber+strict", id="opencti-amber-strict-shape"),
    pytest.param(statement("TLP:AMBER - do not post"), "amber", id="statement-with-more-text"),
    pytest.param(statement("TLP:GREEN", name="TLP:RED"), "red", id="strictest-of-name-and-statement"),
    pytest.param(tlp2("red"), "red", id="tlp2-extension-red"),
    pytest.param(tlp2("amber"), "amber", id="tlp2-extension-amber"),
    pytest.param(tlp2("purple"), "red", id="tlp2-unknown-value-fails-closed"),
]
# Who receives an object at each level in the world's "shared" collection (singcert is cleared for AMBER,
# mycert for GREEN); a RED object names its recipients, here cisa through the world's ONLY_CISA marking.
READERS = {"amber": {"krcert", "cisa", "singcert"}, "amber+strict": {"krcert", "cisa"}, "red": {"krcert", "cisa"}}


def seen_by(world, obj: dict) -> set[str]:  # type: ignore[no-untyped-def]
    seen = set()
    for slug in ("krcert", "cisa", "singcert", "mycert"):
        answer = world.client(slug).get(world.url("shared", f"objects/{obj['id']}/"))
        if answer.status_code == 200:
            seen.add(slug)
    return seen


@pytest.mark.parametrize(("definition", "level"), STATED)
@pytest.mark.parametrize("where", ["same envelope", "stored before"])
def test_an_object_goes_out_at_the_tlp_its_marking_states(world, definition, level, where):
    recipients = [ONLY_CISA] if level == "red" else []
    obj = f.indicator(next(COUNTER), markings=[definition["id"], *recipients])
    client = world.client("krcert")
    if where == "stored before":
        assert client.post(world.url("shared"), [definition]).get_json()["success_count"] == 1
        status = client.post(world.url("shared"), [obj]).get_json()
    else:
        status = client.post(world.url("shared"), [definition, obj]).get_json()
    assert status["failure_count"] == 0, status
    assert seen_by(world, obj) == READERS[level]


def test_a_stated_red_without_recipients_is_refused_like_tlp_red(world):
    definition = statement("TLP:RED")
    status = (
        world.client("krcert")
        .post(world.url("shared"), [definition, f.indicator(next(COUNTER), markings=[definition["id"]])])
        .get_json()
    )
    assert status["success_count"] == 1 and status["failures"][0]["message"].endswith(
        "a TLP:RED object must name its recipients in a sharing marking"
    ), status


def test_a_granular_marking_that_states_a_tlp_holds_the_whole_object_to_it(world):
    definition = statement("TLP:AMBER+STRICT")
    obj = f.indicator(
        next(COUNTER),
        markings=[GREEN],
        granular_markings=[{"marking_ref": definition["id"], "selectors": ["description"]}],
        description="victim list",
    )
    status = world.client("krcert").post(world.url("shared"), [definition, obj]).get_json()
    assert status["failure_count"] == 0, status
    assert seen_by(world, obj) == READERS["amber+strict"]


def test_a_plain_statement_adds_no_restriction(world):
    definition = statement("Copyright 2026 KrCERT/CC. Redistribution within national CERTs only.")
    obj = f.indicator(next(COUNTER), markings=[GREEN, definition["id"]])
    status = world.client("krcert").post(world.url("shared"), [definition, obj]).get_json()
    assert status["failure_count"] == 0, status
    assert seen_by(world, obj) == {"krcert", "cisa", "singcert", "mycert"}
