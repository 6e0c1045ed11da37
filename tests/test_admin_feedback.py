"""The panel's feedback views: an object's sightings timeline and tables, the originator's revoke and new
version, what a partner sent back, the dashboard's feedback panels and a collection's feedback settings."""

from __future__ import annotations

import re

import orjson
import pytest
from sqlalchemy import func, select, update

from hub import ingest, revisions
from hub import models as m
from hub.admin import data_feedback, timeline
from hub.errors import BadRequest, Forbidden
from hub.store import clock, snapshots
from tests import factories as f
from tests.panel import audit_events
from tests.worlds import feedback_world

DAY_US = 86_400_000_000


@pytest.fixture
def world(hub):
    return feedback_world(hub)


def report(hub, world, slug: str, objects: list[dict]) -> None:
    """Post feedback as a partner, by the path a TAXII post takes."""
    result = ingest.ingest_envelope(hub, world["pks"][slug], world["feedback"], objects)
    assert not result.failures, result.failures


def section(body: str, pattern: str) -> str:
    found = re.search(pattern, body, re.S)
    assert found, pattern
    return found.group(1)


def versions_of(hub, stix_id: str) -> list[dict]:
    with hub.session(write=False) as s:
        rows = s.scalars(select(m.ObjectVersion.raw).where(m.ObjectVersion.stix_id == stix_id))
        return sorted((orjson.loads(r) for r in rows), key=lambda o: o["modified"])


def newest_raw(hub, stix_id: str) -> dict:
    return versions_of(hub, stix_id)[-1]


# --------------------------------------------------------------------- the object page


def test_the_object_page_draws_the_sightings_timeline_and_lists_the_reports(admin, world, hub):
    target = world["kr"][0]["id"]
    first = f.sighting(1, target, "cisa", count=2, last_seen="2024-06-03T10:00:00.000Z")
    report(hub, world, "cisa", [first])
    report(hub, world, "mycert", [f.sighting(2, target, "mycert", count=3, last_seen="2024-06-03T22:00:00.000Z")])
    report(hub, world, "singcert", [f.sighting(3, target, "singcert", count=4, last_seen="2024-06-10T00:00:00.000Z")])
    # cisa's second version replaces its first: the chart counts 5, not 2 + 5.
    report(hub, world, "cisa", [{**first, "modified": "2024-06-04T00:00:00.000Z", "count": 5}])
    report(hub, world, "mycert", [f.false_positive(1, target)])

    body = admin.get(f"/admin/objects/{target}").get_data(as_text=True)
    svg = section(body, r'(<svg class="timeline".*?</svg>)')
    assert 'data-total="12"' in svg and 'data-days-per-bar="1"' in svg
    bars = dict(re.findall(r'<rect class="bar[^"]*"[^>]*data-start="([^"]+)" data-count="(\d+)"', svg))
    assert bars["2024-06-03"] == "8" and bars["2024-06-10"] == "4"  # cisa's 5 and mycert's 3 on the 3rd
    assert len(bars) == 8 and sum(int(n) for n in bars.values()) == 12
    assert "<script" not in body.split('<svg class="timeline"')[1].split("</svg>")[0]

    sightings = section(body, r'<table class="data" id="sightings">(.*?)</table>')
    states = re.findall(r'<tr data-reporter="([^"]+)" data-state="([^"]+)">', sightings)
    assert sorted(states) == [
        ("cisa", "current"),
        ("cisa", "superseded"),
        ("mycert", "current"),
        ("singcert", "current"),
    ]
    assert '<td class="count">5</td>' in sightings and "2024-06-10" in sightings
    fps = section(body, r'<table class="data" id="false-positives">(.*?)</table>')
    assert re.findall(r'<tr data-reporter="([^"]+)" data-state="([^"]+)">', fps) == [("mycert", "current")]

    quiet = admin.get(f"/admin/objects/{world['kr'][1]['id']}").get_data(as_text=True)
    assert "No partner has reported a sighting of this object." in quiet
    assert "No partner has reported this object as a false positive." in quiet
    assert '<svg class="timeline"' not in quiet


def test_a_long_history_fits_in_the_chart():
    start = 19_000
    per_day = {start: 2, start + 100: 3, start + 199: 5}
    chart = timeline.chart(per_day)
    assert chart is not None and chart.days_per_bar == 4 and len(chart.bars) == 50
    assert chart.total == 10 and chart.peak == 5 and chart.first == "2022-01-08"
    assert [b.count for b in chart.bars if b.count] == [2, 3, 5]
    tallest = max(chart.bars, key=lambda b: b.count)
    assert tallest.y == chart.top and tallest.y + tallest.height == chart.bottom
    assert timeline.chart({}) is None and timeline.chart({start: 0}) is None


# --------------------------------------------------------------------- revoke and new version


def test_revoke_publishes_a_revoked_version_for_the_originator_with_an_audit_event(admin, world, hub):
    target = world["kr"][0]
    page = admin.get(f"/admin/objects/{target['id']}").get_data(as_text=True)
    assert "Only its originator can publish a new version" in page and 'class="revoke"' in page
    url = f"/admin/objects/{target['id']}/revoke"

    r = admin.post(url, data={"csrf_token": admin.token, "collection": world["shared"]})
    assert r.status_code == 400 and "tick the confirmation first" in r.get_data(as_text=True)
    assert len(versions_of(hub, target["id"])) == 1 and audit_events(hub, "object.revoke") == []

    r = admin.post(url, data={"csrf_token": admin.token, "collection": world["shared"], "confirm": "y"})
    assert r.status_code == 302
    old, new = versions_of(hub, target["id"])
    assert new == {**old, "revoked": True, "modified": new["modified"]} and new["modified"] > old["modified"]
    with hub.session(write=False) as s:
        row = s.execute(
            select(m.ObjectVersion).where(
                m.ObjectVersion.stix_id == target["id"], m.ObjectVersion.version == new["modified"]
            )
        ).scalar_one()
        assert row.originator_id == world["pks"]["krcert"]
    [event] = audit_events(hub, "object.revoke")
    assert (event.actor, event.target) == ("alice", target["id"])
    assert orjson.loads(event.detail) == {
        "collection": world["shared"],
        "originator": "krcert",
        "version": new["modified"],
    }
    # A partner reading the collection receives the revoked version, as from a TAXII post.
    mycert = f.Client(admin.application.test_client(), f.key_for(hub, "mycert"))
    got = mycert.get(f"/dprk/collections/{world['shared']}/objects/{target['id']}/").get_json()["objects"]
    assert got[-1]["revoked"] is True
    page = admin.get(f"/admin/objects/{target['id']}").get_data(as_text=True)
    assert "revoked by its originator" in page and 'class="revoke"' not in page
    # Revoked once is revoked: no second revocation, no new version.
    r = admin.post(url, data={"csrf_token": admin.token, "collection": world["shared"], "confirm": "y"})
    assert r.status_code == 400 and "a revoked object gets no new version" in r.get_data(as_text=True)
    assert len(audit_events(hub, "object.revoke")) == 1


def test_a_new_version_goes_through_ingest_for_the_originator(admin, world, hub):
    target = world["cisa"][0]
    url = f"/admin/objects/{target['id']}/new-version"
    edited = {**target, "name": "Kimsuky relay (retired)", "description": "Moved to a new host."}
    r = admin.post(url, data={"csrf_token": admin.token, "collection": world["shared"], "body": orjson.dumps(edited)})
    assert r.status_code == 302
    new = newest_raw(hub, target["id"])
    assert new["name"] == "Kimsuky relay (retired)" and new["modified"] > target["modified"]
    assert {k: v for k, v in new.items() if k != "modified"} == {k: v for k, v in edited.items() if k != "modified"}
    [event] = audit_events(hub, "object.new_version")
    assert orjson.loads(event.detail)["originator"] == "cisa" and event.actor == "alice"
    page = admin.get(f"/admin/objects/{target['id']}").get_data(as_text=True)
    assert "Kimsuky relay (retired)" in section(page, r'<section class="card" id="summary">(.*?)</section>')


BAD_VERSIONS = [
    ("{not json", 400, "not valid JSON"),
    ("[1, 2]", 400, "must be one JSON object"),
    ("", 400, "edit the object&#39;s JSON"),
    ('{"type": "indicator"}', 400, "keeps the object&#39;s id"),
]


def test_bad_new_versions_are_refused_with_the_reason(admin, world, hub):
    target = world["kr"][1]
    url = f"/admin/objects/{target['id']}/new-version"
    cases = [
        *BAD_VERSIONS,
        (
            orjson.dumps({**target, "created": "2020-01-01T00:00:00.000Z"}).decode(),
            400,
            "keeps the object&#39;s created",
        ),
        # Refused by ingest as a TAXII post would be: the pattern is required.
        (orjson.dumps({k: v for k, v in target.items() if k != "pattern"}).decode(), 400, "was refused"),
    ]
    for body, status, message in cases:
        r = admin.post(url, data={"csrf_token": admin.token, "collection": world["shared"], "body": body})
        assert r.status_code == status, body
        text = r.get_data(as_text=True)
        assert message in text, (body, text[text.find("revise-error") :][:400])
    r = admin.post(
        url, data={"csrf_token": admin.token, "collection": world["feedback"], "body": orjson.dumps(target).decode()}
    )
    assert r.status_code == 400 and "is the feedback collection" in r.get_data(as_text=True)
    r = admin.post(url, data={"csrf_token": admin.token, "collection": "nope", "body": orjson.dumps(target).decode()})
    assert r.status_code == 404 and "no collection" in r.get_data(as_text=True)
    r = admin.post(url, data={"csrf_token": admin.token, "body": orjson.dumps(target).decode()})
    assert r.status_code == 400 and "name the collection" in r.get_data(as_text=True)
    assert len(versions_of(hub, target["id"])) == 1
    assert audit_events(hub, "object.new_version") == []


def test_the_panel_acts_only_as_far_as_the_originator_may(admin, world, hub):
    """krcert no longer writes dprk/shared: its new version is refused by the write rules, as over TAXII."""
    target = world["kr"][0]
    with hub.session() as s:
        s.execute(update(m.Collection).where(m.Collection.uuid == world["shared"]).values(writers="partner:cisa"))
        snapshots.bump_rules(s)
    r = admin.post(
        f"/admin/objects/{target['id']}/revoke",
        data={"csrf_token": admin.token, "collection": world["shared"], "confirm": "y"},
    )
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and "krcert&#39;s new version" in body and "was refused" in body
    assert len(versions_of(hub, target["id"])) == 1 and audit_events(hub, "object.revoke") == []
    # The hub's own objects are not revised here.
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        ref = next(c for c in snap.collections.values() if c.is_reference)
        hub_object = s.scalars(select(m.ObjectVersion.stix_id).where(m.ObjectVersion.collection_id == ref.pk)).first()
    with pytest.raises(BadRequest, match="reference"):
        revisions.revoke(hub, hub_object, ref.uuid, "alice", "admin")


def test_the_auditor_cannot_revoke_or_version(auditor, world, hub):
    target = world["kr"][0]
    page = auditor.get(f"/admin/objects/{target['id']}").get_data(as_text=True)
    assert 'class="revoke"' not in page and "The auditor role is read-only" in page
    for path, data in (
        ("revoke", {"collection": world["shared"], "confirm": "y"}),
        ("new-version", {"collection": world["shared"], "body": orjson.dumps(target).decode()}),
    ):
        r = auditor.post(f"/admin/objects/{target['id']}/{path}", data={"csrf_token": auditor.token, **data})
        assert r.status_code == 403 and "the auditor role is read-only" in r.get_data(as_text=True)
    with pytest.raises(Forbidden, match="read-only"):
        revisions.revoke(hub, target["id"], world["shared"], "audrey", "auditor")
    assert len(versions_of(hub, target["id"])) == 1


# --------------------------------------------------------------------- what a partner sent back


def test_the_partner_page_lists_what_it_sent_back_in_pages(admin, world, hub, monkeypatch):
    kr, cisa_ind = world["kr"], world["cisa"][0]
    report(hub, world, "mycert", [f.sighting(n, kr[n % 2]["id"], "mycert", count=n) for n in range(1, 6)])
    report(hub, world, "mycert", [f.false_positive(1, cisa_ind["id"])])
    report(hub, world, "singcert", [f.sighting(9, kr[0]["id"], "singcert")])
    assert 'id="feedback-link"' in admin.get("/admin/partners/mycert").get_data(as_text=True)

    body = admin.get("/admin/partners/mycert/feedback").get_data(as_text=True)
    rows = re.findall(r'<tr data-feedback="([^"]+)" data-kind="([^"]+)">', body)
    assert len(rows) == 6 and rows[0][1] == "false_positive" and {k for _, k in rows} == {"sighting", "false_positive"}
    assert f.sighting(9, kr[0]["id"], "singcert")["id"] not in body
    assert '<strong data-kind="sighting">5</strong>' in body and '<strong data-kind="false_positive">1</strong>' in body
    assert 'id="capped"' not in body

    monkeypatch.setattr(data_feedback, "PAGE", 4)
    first = admin.get("/admin/partners/mycert/feedback").get_data(as_text=True)
    second = admin.get("/admin/partners/mycert/feedback?page=2").get_data(as_text=True)
    on = [re.findall(r'<tr data-feedback="([^"]+)"', b) for b in (first, second)]
    assert len(on[0]) == 4 and len(on[1]) == 2 and not set(on[0]) & set(on[1])
    assert "page=2" in first and "page=3" not in second

    # Only the newest SCAN_CAP feedback versions are looked through: singcert's one is newest, so 2 of mycert's.
    monkeypatch.setattr(data_feedback, "SCAN_CAP", 3)
    capped = admin.get("/admin/partners/mycert/feedback").get_data(as_text=True)
    assert 'id="capped"' in capped and len(re.findall(r"<tr data-feedback=", capped)) == 2
    assert admin.get("/admin/partners/nobody/feedback").status_code == 404
    quiet = admin.get("/admin/partners/krcert/feedback").get_data(as_text=True)
    assert "krcert has sent no sightings or opinions." in quiet


# --------------------------------------------------------------------- dashboard


def test_the_dashboard_counts_the_last_30_days_of_feedback(admin, world, hub):
    kr, cisa_ind = world["kr"], world["cisa"][0]
    seen = f.sighting(1, kr[0]["id"], "mycert", count=7)
    report(hub, world, "mycert", [seen, f.false_positive(1, kr[1]["id"])])
    # A newer version of mycert's sighting replaces it in the ranking (8, not 7 + 8); both were received.
    report(hub, world, "mycert", [{**seen, "modified": "2024-06-01T00:00:00.000Z", "count": 8}])
    report(hub, world, "singcert", [f.sighting(2, kr[0]["id"], "singcert", count=2)])
    report(hub, world, "cisa", [f.sighting(3, kr[1]["id"], "cisa", count=4)])
    report(hub, world, "krcert", [f.sighting(4, cisa_ind["id"], "krcert", count=1)])
    old = f.sighting(5, cisa_ind["id"], "mycert", count=50)
    report(hub, world, "mycert", [old])
    with hub.session() as s:  # reported 31 days ago: outside the panels
        s.execute(
            update(m.Feedback).where(m.Feedback.stix_id == old["id"]).values(added_us=clock.now_us() - 31 * DAY_US)
        )
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        per = data_feedback.received_per_originator(s, snap)
        top = data_feedback.top_sighted(s, snap)
    assert per == [
        {"originator": "krcert", "sighting": 4, "false_positive": 1, "opinion": 0, "reporters": 3},
        {"originator": "cisa", "sighting": 1, "false_positive": 0, "opinion": 0, "reporters": 1},
    ]
    assert [(t["id"], t["sightings"], t["reporters"], t["originator"]) for t in top] == [
        (kr[0]["id"], 10, 2, "krcert"),
        (kr[1]["id"], 4, 1, "krcert"),
        (cisa_ind["id"], 1, 1, "cisa"),
    ]
    assert top[0]["name"] == "Lazarus C2 11"
    body = admin.get("/admin/").get_data(as_text=True)
    received = section(body, r'<section class="card" id="feedback-received">(.*?)</section>')
    row = section(received, r'<tr data-originator="krcert">(.*?)</tr>')
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["4", "1", "0", "3"]
    ranked = section(body, r'<section class="card" id="top-sighted">(.*?)</section>')
    assert re.findall(r'<tr data-object="([^"]+)">', ranked) == [kr[0]["id"], kr[1]["id"], cisa_ind["id"]]
    assert "Lazarus C2 11" in ranked and "last 30 days" in ranked


# --------------------------------------------------------------------- the collection form


def collection_form(token: str, **changes: str) -> dict:
    return {
        "csrf_token": token,
        "title": "shared collection",
        "max_tlp": "RED",
        "default_tlp": "GREEN",
        "types": "",
        "readers": "*",
        "writers": "*",
        "blocklist_allow_warninglisted": "y",
        **changes,
    }


def test_the_collection_form_edits_the_feedback_settings(admin, world, hub):
    url = f"/admin/collections/{world['shared']}/edit"
    page = admin.get(url).get_data(as_text=True)
    assert 'id="feedback-settings"' in page and 'name="false_positive_threshold"' in page
    r = admin.post(url, data=collection_form(admin.token, false_positive_threshold="2", false_positive_withdraw="y"))
    assert r.status_code == 302, r.get_data(as_text=True)
    with hub.session(write=False) as s:
        row = s.execute(select(m.Collection).where(m.Collection.uuid == world["shared"])).scalar_one()
        assert (row.false_positive_threshold, row.false_positive_withdraw, row.is_feedback) == (2, True, False)
    page = admin.get(url).get_data(as_text=True)
    assert re.search(r'name="false_positive_threshold"[^>]*value="2"', page)
    assert re.search(r'<input checked[^>]*name="false_positive_withdraw"', page)
    assert "2 false-positive reports flag and withdraw" in admin.get("/admin/collections/").get_data(as_text=True)
    [event] = audit_events(hub, "collection.update")
    detail = orjson.loads(event.detail)
    assert detail["before"]["false_positive_threshold"] == 0 and detail["after"]["false_positive_threshold"] == 2
    assert detail["after"]["false_positive_withdraw"] is True

    # The setting takes effect: two partners' reports flag the indicator and withdraw it.
    target = world["kr"][0]["id"]
    report(hub, world, "mycert", [f.false_positive(1, target)])
    report(hub, world, "singcert", [f.false_positive(2, target)])
    with hub.session(write=False) as s:
        flag = s.execute(select(m.FalsePositiveFlag).where(m.FalsePositiveFlag.stix_id == target)).scalar_one()
        assert (flag.reporters, flag.withdrawn) == (2, True)

    # Unticking and emptying turns them off again.
    assert admin.post(url, data=collection_form(admin.token, false_positive_threshold="")).status_code == 302
    with hub.session(write=False) as s:
        row = s.execute(select(m.Collection).where(m.Collection.uuid == world["shared"])).scalar_one()
        assert (row.false_positive_threshold, row.false_positive_withdraw) == (0, False)


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"false_positive_threshold": "1001"}, "use a whole number of partners from 0 to 1000"),
        ({"false_positive_threshold": "-1"}, "use a whole number of partners from 0 to 1000"),
        ({"false_positive_threshold": "three"}, "Not a valid integer value"),
        ({"is_feedback": "y"}, "is already this API root&#39;s feedback collection"),
    ],
)
def test_bad_feedback_settings_change_nothing(admin, world, hub, changes, error):
    def settings() -> tuple:
        with hub.session(write=False) as s:
            return tuple(
                s.execute(
                    select(
                        m.Collection.alias,
                        m.Collection.is_feedback,
                        m.Collection.false_positive_threshold,
                        m.Collection.false_positive_withdraw,
                    ).order_by(m.Collection.alias)
                ).all()
            )

    before = settings()
    r = admin.post(f"/admin/collections/{world['shared']}/edit", data=collection_form(admin.token, **changes))
    assert r.status_code == 400 and error in r.get_data(as_text=True)
    assert settings() == before
    with hub.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.AuditEvent).where(m.AuditEvent.action.like("coll%"))) == 0
