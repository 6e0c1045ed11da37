"""Feedback: sightings and false-positive reports reach the originator in full, the other recipients only as
anonymous counts (or in full when the reporter shares them), and enough reports withdraw an indicator."""

from __future__ import annotations

import csv
import io
import uuid

import orjson
import pytest
from click.testing import CliRunner

from hub import ledger, reference, stix
from hub.cli import main
from hub.ids import FEEDBACK_SHARE_ID
from hub.policy import TLP
from tests import factories as f

GREEN = stix.TLP2_MARKINGS[TLP.GREEN]["id"]
AMBER = stix.TLP2_MARKINGS[TLP.AMBER]["id"]
RED = stix.TLP2_MARKINGS[TLP.RED]["id"]
SLUGS = ("krcert", "cisa", "mycert", "singcert", "jpcert", "vncert")
FEEDBACK = "/dprk/collections/feedback/objects/"
SHARED = "/dprk/collections/shared/objects/"
PRIVATE = "/dprk/collections/private/objects/"
NOT_MY = "marking-definition--1b8b0a55-3f9c-4d1e-9a0e-7a1c2d3e4f50"


def build(hub, *, threshold: int = 3, withdraw: bool = True) -> None:
    """krcert publishes; shared is read by all (mycert cleared GREEN), private by krcert alone."""
    with hub.session() as s:
        f.hub_partner(s)
        for slug, country, clearance in (
            ("krcert", "KR", TLP.RED),
            ("cisa", "US", TLP.RED),
            ("mycert", "MY", TLP.GREEN),
            ("singcert", "SG", TLP.AMBER),
            ("jpcert", "JP", TLP.RED),
            ("vncert", "VN", TLP.AMBER),
        ):
            f.add_partner(s, slug, country, clearance)
        root = f.add_root(s, "dprk")
        shared = f.add_collection(s, root, "shared", allow_warninglisted=True)
        shared.false_positive_threshold, shared.false_positive_withdraw = threshold, withdraw
        f.add_collection(s, root, "private", readers=["partner:krcert"], writers=["partner:krcert"])
        fb = f.add_collection(s, root, "feedback", default_tlp=TLP.AMBER, types=["sighting", "opinion", "note"])
        fb.is_feedback = True
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)


@pytest.fixture
def as_(app, hub):
    build(hub)
    keys = {slug: f.key_for(hub, slug) for slug in SLUGS}
    return lambda slug: f.Client(app.test_client(), keys[slug])


def sighting(n: int, target: str, reporter: str, *, markings=(GREEN,), modified: str = f.CLOCK, **extra) -> dict:
    obj = {
        "type": "sighting",
        "spec_version": "2.1",
        "id": f"sighting--{uuid.uuid5(uuid.NAMESPACE_OID, f'sighting/{n}')}",
        "created": f.CLOCK,
        "modified": modified,
        "sighting_of_ref": target,
        "created_by_ref": f"identity--{uuid.uuid5(f.HUB_NAMESPACE, reporter)}",
        "where_sighted_refs": [f"identity--{uuid.uuid5(f.HUB_NAMESPACE, reporter)}"],
        "count": 2,
        "first_seen": "2024-06-01T00:00:00Z",
        "last_seen": "2024-06-03T00:00:00Z",
        "object_marking_refs": list(markings),
    }
    obj.update(extra)
    return obj


def opinion(n: int, target: str, value: str = "strongly-disagree", *, modified: str = f.CLOCK, **extra) -> dict:
    obj = {
        "type": "opinion",
        "spec_version": "2.1",
        "id": f"opinion--{uuid.uuid5(uuid.NAMESPACE_OID, f'opinion/{n}')}",
        "created": f.CLOCK,
        "modified": modified,
        "opinion": value,
        "explanation": "benign: our own scanner",
        "object_refs": [target],
        "object_marking_refs": [GREEN],
    }
    obj.update(extra)
    return obj


def post(client, objects) -> dict:
    r = client.post(FEEDBACK, objects)
    assert r.status_code == 202, r.get_data(as_text=True)
    return r.get_json()


def objects(client, url: str = FEEDBACK) -> list[dict]:
    r = client.get(url)
    assert r.status_code == 200
    return r.get_json().get("objects", [])


def feed(client, fmt: str, **params):
    r = client.http.get(
        f"/feeds/dprk/shared/{fmt}", headers={"Authorization": f"Bearer {client.secret}"}, query_string=params
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_data(as_text=True)


def test_a_sighting_reaches_the_originator_in_full_and_others_as_counts(as_):
    ind = f.indicator(1, markings=[GREEN])
    assert post_to(as_("krcert"), SHARED, [ind])["success_count"] == 1
    seen = sighting(1, ind["id"], "cisa")
    status = post(as_("cisa"), [seen])
    assert (status["success_count"], status["failure_count"]) == (1, 0), status
    assert objects(as_("krcert")) == [seen]  # the originator: the sighting itself, byte for byte
    assert objects(as_("cisa")) == [seen]  # the reporter: its own
    for slug in ("mycert", "singcert", "jpcert"):
        assert objects(as_(slug)) == [], slug  # nobody else reads it in the feedback collection
        assert as_(slug).get(FEEDBACK + seen["id"] + "/").status_code == 404
        sightings = [o for o in objects(as_(slug), SHARED) if o["type"] == "sighting"]
        assert len(sightings) == 1, slug
        (agg,) = sightings
        assert agg["id"] != seen["id"] and agg["sighting_of_ref"] == ind["id"]
        assert (agg["count"], agg["x_cti_hub_false_positives"]) == (2, 0)
        assert (agg["first_seen"], agg["last_seen"]) == ("2024-06-01T00:00:00.000000Z", "2024-06-03T00:00:00.000000Z")
        assert "where_sighted_refs" not in agg and agg["created_by_ref"].startswith("identity--")
        assert "cisa" not in orjson.dumps(agg).decode() and seen["created_by_ref"] not in orjson.dumps(agg).decode()
    rows = list(csv.DictReader(io.StringIO(feed(as_("mycert"), "csv"))))
    assert [(r["id"], r["sightings"], r["false_positives"]) for r in rows] == [(ind["id"], "2", "0")]
    assert rows[0]["last_seen"] == "2024-06-03T00:00:00.000000Z"
    (doc,) = [orjson.loads(line) for line in feed(as_("jpcert"), "ecs").splitlines()]
    assert doc["threat"]["indicator"]["sightings"] == 2 and doc["labels"]["false_positives"] == "0"
    assert doc["threat"]["indicator"]["last_seen"] == "2024-06-03T00:00:00.000000Z"


def post_to(client, url: str, objs) -> dict:
    r = client.post(url, objs)
    assert r.status_code == 202, r.get_data(as_text=True)
    return r.get_json()


def test_feedback_about_a_hidden_object_is_refused_like_an_absent_one(as_):
    hidden = f.indicator(2)
    assert post_to(as_("krcert"), PRIVATE, [hidden])["success_count"] == 1
    never = f"indicator--{uuid.uuid4()}"
    answers = []
    for n, target in enumerate((hidden["id"], never)):
        r = as_("cisa").post(FEEDBACK, [sighting(10 + n, target, "cisa"), opinion(10 + n, target)])
        body = r.get_json()
        answers.append(
            (
                r.status_code,
                sorted(r.headers.keys()),
                body["success_count"],
                body["failure_count"],
                [x["message"].replace(target, "X") for x in body["failures"]],
            )
        )
    assert answers[0] == answers[1], answers
    assert answers[0][4][0] == "sighting_of_ref X: no object with this id is available to you in API root dprk"
    assert objects(as_("krcert")) == []  # nothing reached the hidden object's originator


def test_the_reporter_shares_the_sighting_itself_under_both_rules(as_):
    green, amber = f.indicator(3, markings=[GREEN]), f.indicator(4, markings=[AMBER])
    not_my = f.sharing_marking(NOT_MY, countries=["KR", "US", "SG", "JP"])
    post_to(as_("krcert"), SHARED, [green, amber])
    shared = sighting(3, green["id"], "cisa", markings=(AMBER, FEEDBACK_SHARE_ID))
    narrowed = sighting(4, amber["id"], "cisa", markings=(GREEN, FEEDBACK_SHARE_ID, NOT_MY))
    status = post(as_("cisa"), [not_my, shared, narrowed])
    assert status["failure_count"] == 2 and status["success_count"] == 1, status  # the marking is no feedback
    assert post_to(as_("cisa"), SHARED, [not_my])["success_count"] == 1
    status = post(as_("cisa"), [shared, narrowed])
    assert status["success_count"] == 2, status
    assert {o["id"] for o in objects(as_("krcert"))} == {shared["id"], narrowed["id"]}
    for slug, expected in (
        ("singcert", {shared["id"], narrowed["id"]}),  # AMBER clearance, admitted by the marking
        ("mycert", set()),  # GREEN clearance: AMBER sighting and AMBER indicator are above it
        ("vncert", {shared["id"]}),  # the reporter's sharing marking leaves VN out
    ):
        got = {o["id"] for o in objects(as_(slug), SHARED) if o["type"] == "sighting" and "where_sighted_refs" in o}
        assert got == expected, slug


def test_feedback_the_originator_could_not_receive_is_refused(as_):
    ind = f.indicator(5, markings=[GREEN])
    post_to(as_("mycert"), SHARED, [ind])  # mycert is cleared for GREEN only
    status = post(as_("cisa"), [sighting(5, ind["id"], "cisa", markings=(AMBER,))])
    assert status["failure_count"] == 1 and "could not receive this feedback" in status["failures"][0]["message"]
    assert post(as_("cisa"), [sighting(6, ind["id"], "cisa", markings=(GREEN,))])["success_count"] == 1
    assert len(objects(as_("mycert"))) == 1


def test_only_sightings_and_opinions_about_one_object_are_feedback(as_):
    ind = f.indicator(7, markings=[GREEN])
    post_to(as_("krcert"), SHARED, [ind])
    two = opinion(7, ind["id"], object_refs=[ind["id"], f.indicator(8)["id"]])
    status = post(as_("cisa"), [f.indicator(9), two, sighting(9, GREEN, "cisa")])
    messages = sorted(x["message"] for x in status["failures"])
    assert status["failure_count"] == 3, status
    assert "exactly one object" in messages[0] or "exactly one object" in " ".join(messages)
    assert any("takes sightings and opinions only" in m for m in messages)
    assert any("not marking-definition objects" in m for m in messages)


def blocklist(client, **params) -> list[str]:
    return feed(client, "ip.txt", **params).split()


def test_three_false_positive_reports_withdraw_the_indicator_from_every_blocklist(as_, hub):
    ind = f.indicator(11, markings=[GREEN])
    other = f.indicator(12, markings=[GREEN])
    post_to(as_("krcert"), SHARED, [ind, other])
    value = "198.51.100.11"
    readers = ("krcert", "cisa", "mycert", "singcert", "jpcert", "vncert")
    assert all(value in blocklist(as_(s)) for s in readers)
    for n, slug in enumerate(("cisa", "singcert")):
        post(as_(slug), [opinion(20 + n, ind["id"])])
    post(as_("cisa"), [opinion(22, ind["id"], "disagree")])  # the same partner twice counts once
    assert all(value in blocklist(as_(s)) for s in readers)
    post(as_("jpcert"), [opinion(23, ind["id"])])
    for slug in readers:
        listed = blocklist(as_(slug))
        assert value not in listed and "198.51.100.12" in listed, slug
        assert value in blocklist(as_(slug), include="withdrawn"), slug
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(feed(as_("mycert"), "csv")))}
    assert rows[ind["id"]]["false_positives"] == "3" and "false positive" in rows[ind["id"]]["blocklist"]
    notes = [o for o in objects(as_("krcert")) if o["type"] == "note"]
    assert len(notes) == 1 and "false positive by 3 partners" in notes[0]["content"]
    assert "withdrawn from the collection's blocklists" in notes[0]["content"]
    assert not [o for o in objects(as_("cisa")) if o["type"] == "note"]  # the flag goes to the originator
    # Reversible: one reporter changes its mind, the indicator is back in every blocklist.
    post(as_("jpcert"), [opinion(23, ind["id"], "agree", modified="2024-06-01T00:00:00.000Z")])
    assert all(value in blocklist(as_(s)) for s in readers)
    notes = [o for o in objects(as_("krcert")) if o["type"] == "note"]
    assert len(notes) == 2 and any("back in the collection's blocklists" in n["content"] for n in notes)


def test_below_the_threshold_or_without_withdrawal_the_blocklists_keep_it(app, hub):
    build(hub, threshold=2, withdraw=False)
    keys = {slug: f.key_for(hub, slug) for slug in SLUGS}
    client = {slug: f.Client(app.test_client(), keys[slug]) for slug in SLUGS}
    ind = f.indicator(13, markings=[GREEN])
    post_to(client["krcert"], SHARED, [ind])
    post(client["cisa"], [opinion(30, ind["id"])])
    post(client["jpcert"], [opinion(31, ind["id"])])
    assert "198.51.100.13" in blocklist(client["mycert"])
    (note,) = [o for o in objects(client["krcert"]) if o["type"] == "note"]
    assert "still list it" in note["content"]


def test_cli_lists_feedback_by_originator_and_time(as_, hub, database_url, tmp_path):
    ind = f.indicator(14, markings=[GREEN])
    post_to(as_("krcert"), SHARED, [ind])
    post(as_("cisa"), [sighting(14, ind["id"], "cisa")])
    post(as_("singcert"), [opinion(40, ind["id"])])
    runner = CliRunner()
    env = f.cli_env(database_url, tmp_path)
    out = runner.invoke(main, ["feedback", "list", "--originator", "krcert"], env=env)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()[1:]
    assert len(lines) == 2 and "sighting" in lines[0] and "cisa" in lines[0] and "false_positive" in lines[1]
    assert all("krcert" in line and ind["id"] in line and "current" in line for line in lines)
    out = runner.invoke(main, ["feedback", "list", "--originator", "cisa"], env=env)
    assert out.exit_code == 0 and len(out.output.splitlines()) == 1
    out = runner.invoke(main, ["feedback", "list", "--since", "2999-01-01T00:00:00Z"], env=env)
    assert out.exit_code == 0 and len(out.output.splitlines()) == 1
    for args, message in (
        (["--originator", "nobody"], "no partner 'nobody'"),
        (["--since", "yesterday"], "'yesterday' is not an RFC 3339 timestamp"),
    ):
        out = runner.invoke(main, ["feedback", "list", *args], env=env)
        assert out.exit_code == 1 and message in out.output, out.output


def received(hub, stix_id: str) -> set[tuple[str, str, str]]:
    with hub.session(write=False) as s:
        return {(r.partner, r.collection, r.endpoint) for r in ledger.who_received(s, hub.snapshot(s), stix_id)}


def test_the_ledger_names_who_received_feedback_and_which_blocklists_left_an_indicator_out(as_, hub):
    ind = f.indicator(15, markings=[GREEN])
    post_to(as_("krcert"), SHARED, [ind])
    seen = sighting(15, ind["id"], "cisa")
    post(as_("cisa"), [seen])
    for slug in SLUGS:
        objects(as_(slug))  # everyone reads the feedback collection: only krcert and cisa receive it
    assert received(hub, seen["id"]) == {("krcert", "feedback", "objects"), ("cisa", "feedback", "objects")}
    for n, slug in enumerate(("cisa", "singcert", "jpcert")):
        post(as_(slug), [opinion(50 + n, ind["id"])])
    assert "198.51.100.15" not in blocklist(as_("mycert"))
    assert ("mycert", "shared", "ip.txt") not in received(hub, ind["id"])
    post(as_("jpcert"), [opinion(52, ind["id"], "agree", modified="2024-06-01T00:00:00.000Z")])
    assert "198.51.100.15" in blocklist(as_("mycert"))
    assert ("mycert", "shared", "ip.txt") in received(hub, ind["id"])


def test_a_deleted_report_leaves_the_counts_and_clears_the_flag(as_):
    ind = f.indicator(16, markings=[GREEN])
    post_to(as_("krcert"), SHARED, [ind])
    reports = [opinion(60 + n, ind["id"]) for n in range(3)]
    for report, slug in zip(reports, ("cisa", "singcert", "jpcert"), strict=True):
        post(as_(slug), [report])
    assert "198.51.100.16" not in blocklist(as_("vncert"))
    assert as_("cisa").delete(FEEDBACK + reports[2]["id"] + "/").status_code == 404  # not cisa's report
    assert as_("jpcert").delete(FEEDBACK + reports[2]["id"] + "/").status_code == 200
    assert "198.51.100.16" in blocklist(as_("vncert"))
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(feed(as_("vncert"), "csv")))}
    assert rows[ind["id"]]["false_positives"] == "2" and rows[ind["id"]]["blocklist"] == ""
