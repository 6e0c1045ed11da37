"""ACS 3.0 data markings (CISA AIS): accepted, kept byte for byte, and enforced on top of TLP on every read path.

The markings are built from the published ACS 3.0 STIX 2.1 example (the AIS marking the stix2-elevator
writes); each test changes only what it is about.
"""

from __future__ import annotations

import copy
import csv
import io
import re
import uuid
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from hub import acs, create_app, sharing
from hub import models as m
from hub.errors import ConfigError
from hub.policy import TLP
from hub.store import snapshots
from tests import factories as f
from tests.conftest import fresh_database_url
from tests.panel import add_accounts, logged_in

AMBER = "marking-definition--f88d31f6-486f-44da-b317-01333bde0b82"
GREEN = "marking-definition--34098fce-860f-48ae-8e50-ebd3cc5e41da"
COUNTER = iter(range(8100, 8400))

# The published example: AIS, unclassified FOUO, CISA uses permitted to ALL, further sharing within USA.USG.
EXAMPLE: dict[str, Any] = {
    "type": "marking-definition",
    "spec_version": "2.1",
    "id": "marking-definition--75ad3822-3fbe-4de8-ac94-f02f01bf778b",
    "created": "2021-08-14T01:08:09.163015Z",
    "modified": "2021-08-14T01:08:09.163015Z",
    "extensions": {
        acs.ACS_EXTENSION_ID: {
            "extension_type": "property-extension",
            "identifier": "isa:guide.19001.ACS3-e0c28f68-5570-434a-9764-3e8498f0a59a",
            "name": "Serve much idea usually",
            "create_date_time": "2021-08-14T01:08:08.432065Z",
            "responsible_entity_custodian": "USA.DHS.US-CERT",
            "responsible_entity_originator": "USA.DHS.US-CERT",
            "authority_reference": ["urn:isa:authority:misa"],
            "policy_reference": "urn:isa:policy:acs:ns:v3.0?privdefault=deny&sharedefault=deny",
            "access_privilege": [
                {
                    "privilege_action": "CISAUSES",
                    "privilege_scope": {
                        "permitted_nationalities": ["ALL"],
                        "permitted_organizations": ["ALL"],
                        "shareability": ["ALL"],
                        "entity": ["ALL"],
                    },
                    "rule_effect": "permit",
                }
            ],
            "further_sharing": [{"sharing_scope": ["USA.USG"], "rule_effect": "permit"}],
            "control_set": {"classification": "U", "formal_determination": ["FOUO", "AIS"]},
        }
    },
}


def acs_marking(
    *, nationalities: list[str] | None = None, privileges: list | None = None, **changes: Any
) -> dict[str, Any]:
    """The example under a new id, with its CISAUSES nationalities, privileges or other properties changed."""
    marking = copy.deepcopy(EXAMPLE)
    marking["id"] = f"marking-definition--{uuid.uuid4()}"
    ext = marking["extensions"][acs.ACS_EXTENSION_ID]
    if nationalities is not None:
        ext["access_privilege"][0]["privilege_scope"]["permitted_nationalities"] = nationalities
    if privileges is not None:
        ext["access_privilege"] = privileges
    for key, value in changes.items():
        if value is None:
            ext.pop(key, None)
        else:
            ext[key] = value
    return marking


READERS = ("cisa", "krcert", "thaicert", "singcert", "mycert", "peer", "otherpeer")


@pytest.fixture(scope="module")
def world(db_engine_name, db_template, tmp_path_factory):  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("acs")
    settings = {
        "database_url": fresh_database_url(db_engine_name, db_template, tmp / "hub.db"),
        "data_dir": str(tmp),
        "secret_key": "test-secret-key",
        "rate_limit_per_minute": 0,
    }
    app = create_app(settings)
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        f.hub_partner(s)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        cisa.acs_organization, cisa.acs_shareability, cisa.acs_entity = "USA.DHS.CISA", "NCC", "GOV"
        f.add_partner(s, "krcert", "KR", TLP.RED).acs_shareability = "NCC"
        f.add_partner(s, "thaicert", "TH", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_partner(s, "mycert", "MY", TLP.GREEN)
        f.add_partner(s, "peer", "US", TLP.AMBER, kind="hub").acs_organization = "USA.USG.DHS"
        f.add_partner(s, "otherpeer", "JP", TLP.AMBER, kind="hub").acs_organization = "JPN.NISC"
        root = f.add_root(s, "dprk")
        collection = f.add_collection(s, root, "ais", max_tlp=TLP.RED, default_tlp=TLP.GREEN).uuid
        add_accounts(s)
        snapshots.bump_rules(s)
    keys = {slug: f.key_for(hub, slug) for slug in READERS}
    yield {"app": app, "hub": hub, "keys": keys, "url": f"/dprk/collections/{collection}/objects/"}
    hub.engine.dispose()


def client(world, slug: str) -> f.Client:  # type: ignore[no-untyped-def]
    return f.Client(world["app"].test_client(), world["keys"][slug])


def publish(world, objects: list[dict], slug: str = "cisa") -> dict:  # type: ignore[no-untyped-def]
    return client(world, slug).post(world["url"], objects).get_json()


def receivers(world, obj: dict) -> set[str]:  # type: ignore[no-untyped-def]
    """Who receives ``obj`` by GET, in the objects list and in the manifest (which must agree)."""
    seen = set()
    for slug in READERS:
        by_get = client(world, slug).get(world["url"] + f"{obj['id']}/").status_code == 200
        listed = client(world, slug).get(world["url"], {"match[id]": obj["id"]}).get_json() or {}
        manifest = client(world, slug).get(world["url"].replace("objects/", "manifest/"), {"match[id]": obj["id"]})
        in_list = bool(listed.get("objects"))
        in_manifest = bool((manifest.get_json() or {}).get("objects"))
        assert by_get == in_list == in_manifest, (slug, by_get, in_list, in_manifest)
        if by_get:
            seen.add(slug)
    return seen


CASES = [
    pytest.param(["USA"], [], {"cisa", "peer"}, id="USA-reaches-US-partners-only"),
    pytest.param(["KOR"], [], {"cisa", "krcert"}, id="KOR-reaches-Korean-partners-only"),
    pytest.param(["ALL"], [], {"cisa", "krcert", "thaicert", "singcert", "mycert", "peer"}, id="ALL-reaches-everyone"),
    pytest.param(["ALL"], [AMBER], {"cisa", "krcert", "thaicert", "singcert", "peer"}, id="TLP-still-applies"),
    pytest.param(["USA", "THA"], [], {"cisa", "thaicert", "peer"}, id="several-nationalities"),
]


@pytest.mark.parametrize(("nationalities", "tlp", "expected"), CASES)
def test_access_privilege_nationalities_decide_who_receives(world, nationalities, tlp, expected):
    marking = acs_marking(nationalities=nationalities)
    obj = f.indicator(next(COUNTER), markings=[marking["id"], *tlp])
    status = publish(world, [marking, obj])
    assert status["failure_count"] == 0, status
    assert receivers(world, obj) == expected


def test_no_privilege_and_privdefault_deny_reaches_only_the_originator(world):
    marking = acs_marking(privileges=[])
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj])["failure_count"] == 0
    assert receivers(world, obj) == {"cisa"}


def test_privdefault_permit_admits_all_but_a_denied_nationality(world):
    marking = acs_marking(
        policy_reference="urn:isa:policy:acs:ns:v3.0?privdefault=permit&sharedefault=permit",
        privileges=[
            {
                "privilege_action": "CISAUSES",
                "privilege_scope": {"permitted_nationalities": ["THA"]},
                "rule_effect": "deny",
            }
        ],
    )
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj])["failure_count"] == 0
    # sharedefault=permit: both peer hubs may receive it as further sharing
    assert receivers(world, obj) == {"cisa", "krcert", "singcert", "mycert", "peer", "otherpeer"}


def test_organisations_and_categories_limit_the_privilege(world):
    marking = acs_marking(
        privileges=[
            {
                "privilege_action": "CISAUSES",
                "privilege_scope": {"permitted_organizations": ["USA.DHS"], "shareability": ["NCC"]},
                "rule_effect": "permit",
            }
        ]
    )
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj], "krcert")["failure_count"] == 0
    assert receivers(world, obj) == {"krcert", "cisa"}  # the originator, and USA.DHS.CISA with NCC


def test_no_foreign_nationals_limits_to_usa(world):
    marking = acs_marking(control_set={"classification": "U", "formal_determination": ["NF"]})
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj], "krcert")["failure_count"] == 0
    assert receivers(world, obj) == {"krcert", "cisa", "peer"}


def test_further_sharing_decides_which_peer_hub_receives(world):
    marking = acs_marking()  # further sharing: permit USA.USG, sharedefault=deny
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj])["failure_count"] == 0
    assert {"peer"} <= receivers(world, obj) and "otherpeer" not in receivers(world, obj)
    closed = acs_marking(further_sharing=None)
    obj = f.indicator(next(COUNTER), markings=[closed["id"]])
    assert publish(world, [closed, obj])["failure_count"] == 0
    assert not {"peer", "otherpeer"} & receivers(world, obj)  # sharedefault=deny and no scope: nothing goes further


def test_a_stored_marking_serves_later_objects_and_stays_byte_for_byte(world):
    marking = acs_marking(nationalities=["KOR"])
    assert publish(world, [marking])["success_count"] == 1
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [obj])["success_count"] == 1
    assert receivers(world, obj) == {"cisa", "krcert"}
    got = client(world, "cisa").get(world["url"] + f"{marking['id']}/").get_json()["objects"][0]
    assert got == marking


@pytest.mark.parametrize("level", ["C", "S", "TS"])
def test_a_classified_marking_is_refused_with_a_reason(world, level):
    marking = acs_marking(control_set={"classification": level})
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    status = publish(world, [marking, obj])
    assert status["success_count"] == 0, status
    messages = " ".join(x["message"] for x in status["failures"])
    assert f"ACS classification {level} is refused: this hub holds unclassified (U) data only" in messages


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"policy_reference": "urn:isa:policy:other"}, "policy_reference must include"),
        ({"responsible_entity_custodian": None}, "'responsible_entity_custodian' is required"),
        ({"control_set": {"classification": "U", "formal_determination": ["MAYBE"]}}, "'MAYBE' not allowed"),
        ({"access_privilege": [{"privilege_action": "CISAUSES", "rule_effect": "allow"}]}, "'permit' or 'deny'"),
        ({"control_set": {"classification": "U", "permitted_nationalities": ["usa"]}}, "'usa' not allowed"),
    ],
)
def test_an_invalid_marking_is_refused_naming_what_is_wrong(world, change, message):
    marking = acs_marking(**change)
    status = publish(world, [marking])
    assert status["success_count"] == 0 and "invalid ACS 3.0 marking" in status["failures"][0]["message"], status
    assert message in status["failures"][0]["message"]


def test_a_marking_the_hub_cannot_evaluate_fails_closed(world):
    marking = acs_marking(control_set={"classification": "U", "sci_controls": ["SI"]})
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj])["failure_count"] == 0
    assert receivers(world, obj) == {"cisa"}


def test_who_can_see_explains_acs_verdicts(world):
    marking = acs_marking(nationalities=["USA", "KOR"])
    obj = f.indicator(next(COUNTER), markings=[marking["id"]])
    assert publish(world, [marking, obj])["failure_count"] == 0
    admin = logged_in(world["app"])
    body = admin.get(f"/admin/who?id={obj['id']}").get_data(as_text=True)

    def row(slug: str) -> str:
        found = re.search(rf'<tr class="(\w+)" data-partner="{slug}">(.*?)</tr>', body, re.S)
        assert found, slug
        return found.group(0)

    assert 'class="allowed"' in row("krcert")
    assert 'class="denied"' in row("thaicert") and "ACS: nationality THA not permitted for CISAUSES" in row("thaicert")


def test_the_rules_explain_further_sharing_to_a_peer_hub():
    rules = acs.parse(EXAMPLE["extensions"][acs.ACS_EXTENSION_ID])
    peer = acs.Recipient("peer", "USA", "USA.USG.DHS", peer=True)
    other = acs.Recipient("otherpeer", "JPN", "JPN.NISC", peer=True)
    assert acs.denials(rules, peer) == []
    assert acs.denials(rules, other) == [
        "ACS: no further_sharing scope admits peer hub otherpeer (sharedefault=deny or not in scope)"
    ]
    # a direct recipient is not further sharing: the same partner as a CERT receives it
    assert acs.denials(rules, acs.Recipient("otherpeer", "JPN", "JPN.NISC")) == []


def test_partner_acs_attributes_round_trip_through_sharing_yaml(world):
    with world["hub"].session(write=False) as s:
        text = sharing.export(s)
    cisa = next(p for p in sharing.loads(text).partners if p.slug == "cisa")
    assert (cisa.acs_organization, cisa.acs_shareability, cisa.acs_entity) == ("USA.DHS.CISA", ("NCC",), ("GOV",))
    bad = text.replace("shareability: [NCC]", "shareability: [NCC, SPIES]", 1)
    with pytest.raises(ConfigError, match="bad ACS shareability of partner cisa: 'SPIES'"):
        sharing.loads(bad)


def test_the_markings_table_records_acs_kind(world):
    marking = acs_marking()
    assert publish(world, [marking])["success_count"] == 1
    with world["hub"].session(write=False) as s:
        kind = s.execute(select(m.Marking.kind).where(m.Marking.id == marking["id"])).scalar_one()
        raw = s.execute(select(m.Marking.raw).where(m.Marking.id == marking["id"])).scalar_one()
    assert kind == "acs" and orjson.loads(raw) == marking


def test_flat_feeds_carry_the_acs_summary_and_further_sharing_scope(world):
    marking = acs_marking(nationalities=["ALL"])
    obj = f.indicator(next(COUNTER), markings=[marking["id"]], pattern="[ipv4-addr:value = '198.51.100.77']")
    plain = f.indicator(next(COUNTER), pattern="[ipv4-addr:value = '198.51.100.78']")
    assert publish(world, [marking, obj, plain])["failure_count"] == 0
    collection = world["url"].split("/")[3]
    feed = client(world, "krcert").get(f"/feeds/dprk/{collection}/csv").get_data(as_text=True)
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(feed))}
    summary = "U; FD=FOUO,AIS; CISAUSES=permit:ALL; FS=permit:USA.USG; privdefault=deny; sharedefault=deny"
    assert (rows[obj["id"]]["acs"], rows[obj["id"]]["acs_further_sharing"]) == (summary, "USA.USG")
    assert (rows[plain["id"]]["acs"], rows[plain["id"]]["acs_further_sharing"]) == ("", "")
    lines = client(world, "krcert").get(f"/feeds/dprk/{collection}/ecs").get_data(as_text=True).splitlines()
    docs = {d["threat"]["indicator"]["id"][0]: d["threat"]["indicator"] for d in map(orjson.loads, lines)}
    assert docs[obj["id"]]["marking"] == {
        "tlp": "GREEN",
        "tlp_version": "2.0",
        "acs": summary,
        "acs_further_sharing": "USA.USG",
    }
    assert "acs" not in docs[plain["id"]]["marking"]
