"""Retention: superseded versions past a collection's retention_days move to the archive.

The newest version of every object stays; paging resumed across a run stays exact; the versions
endpoint stops listing archived versions; the ledger still answers for them; backups carry them;
sharing.yaml and the admin panel set the retention. Also: an indicator that expires while a SIEM
polls leaves the feeds' active list for the withdrawn list without any new version.
"""

from __future__ import annotations

import warnings

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import func, select, text, update

from hub import ledger, retention, stix
from hub import models as m
from hub.cli import main
from hub.store import auditlog, clock
from tests import factories as f
from tests.panel import audit_events
from tests.worlds import AMBER, panel_world, small_world

V1, V2, V3 = f.CLOCK, "2024-06-01T00:00:00.000Z", "2024-07-01T00:00:00.000Z"
DAY_US = retention.DAY_US
LATER = 40 * DAY_US  # how far past "now" the tests run retention: beyond a 30-day retention


@pytest.fixture
def ops(hub):
    """krcert publishes into dprk/shared (retention 30 days) and dprk/kept (no retention); cisa and mycert read."""
    found = small_world(hub)
    with hub.session() as s:
        root = s.execute(select(m.ApiRoot).where(m.ApiRoot.slug == "dprk")).scalar_one()
        kept = f.add_collection(s, root, "kept").uuid
        s.execute(update(m.Collection).where(m.Collection.uuid == found["shared"]).values(retention_days=30))
    return {**found, "kept": kept, "kept_url": f"/dprk/collections/{kept}/objects/"}


@pytest.fixture
def as_(app, ops):
    def client(slug: str) -> f.Client:
        return f.Client(app.test_client(), ops["keys"][slug])

    return client


def publish(as_, url: str, objects: list[dict]) -> None:
    r = as_("krcert").post(url, objects)
    assert r.status_code == 202 and r.get_json()["failure_count"] == 0, r.get_json()


def stored(hub, collection_uuid: str) -> list[tuple[str, str]]:
    """(id, version) of every version stored in a collection, in date_added order."""
    with hub.session(write=False) as s:
        return [
            tuple(r)
            for r in s.execute(
                select(m.ObjectVersion.stix_id, m.ObjectVersion.version)
                .join(m.Collection)
                .where(m.Collection.uuid == collection_uuid)
                .order_by(m.ObjectVersion.date_added)
            )
        ]


def archived(hub) -> list[m.ArchivedVersion]:
    with hub.session(write=False) as s:
        rows = list(s.scalars(select(m.ArchivedVersion).order_by(m.ArchivedVersion.date_added)))
        s.expunge_all()
        return rows


def run_later(hub, **kwargs) -> list[retention.Outcome]:
    return retention.run(hub, now_us=clock.now_us() + LATER, **kwargs)


def ids(body: dict) -> list[tuple[str, str]]:
    return [(o["id"], o["modified"]) for o in body.get("objects", [])]


# --------------------------------------------------------------------- archiving


def test_archiving_keeps_the_latest_version_of_every_object(hub, ops, as_, monkeypatch):
    one, two, three = f.indicator(1), f.indicator(2), f.indicator(3)
    publish(as_, ops["url"], [one, f.indicator(1, modified=V3), f.indicator(1, modified=V2), two, three])
    publish(as_, ops["url"], [f.indicator(3, modified=V2)])
    publish(as_, ops["kept_url"], [one, f.indicator(1, modified=V2)])
    before = stored(hub, ops["shared"])

    assert retention.run(hub)[0].archived == 0  # superseded, but not 30 days old yet
    assert stored(hub, ops["shared"]) == before

    locked = []
    real_lock = clock.lock_clock

    def lock(session):
        locked.append(session.in_transaction())
        return real_lock(session)

    monkeypatch.setattr(clock, "lock_clock", lock)
    [outcome] = run_later(hub, batch_size=2)
    assert (outcome.collection, outcome.retention_days, outcome.archived, outcome.batches) == ("dprk/shared", 30, 3, 2)
    assert locked == [True, True]  # each batch in its own transaction, under the writer lock
    assert stored(hub, ops["shared"]) == [(one["id"], V3), (two["id"], V1), (three["id"], V2)]
    assert len(stored(hub, ops["kept"])) == 2  # no retention: every version kept
    gone = archived(hub)
    assert sorted((a.stix_id, a.version) for a in gone) == sorted([(one["id"], V1), (one["id"], V2), (three["id"], V1)])
    assert all(a.archived_us > 0 for a in gone)
    original = {(one["id"], V1): one, (three["id"], V1): three}
    for a in gone:
        if (a.stix_id, a.version) in original:  # stored byte for byte as published
            assert orjson.loads(a.raw) == original[(a.stix_id, a.version)]

    assert run_later(hub)[0].archived == 0  # nothing left to do
    events = audit_events(hub, "retention.run")
    assert [orjson.loads(e.detail)["archived"] for e in events] == [
        {"dprk/shared": 0},
        {"dprk/shared": 3},
        {"dprk/shared": 0},
    ]


def test_a_version_stays_while_its_successor_reaches_fewer_partners(hub, ops, as_):
    raised = f.indicator(5)  # GREEN, then AMBER: mycert (clearance GREEN) only ever had the first
    lowered = f.indicator(6, markings=[AMBER])  # AMBER, then GREEN: everyone who had it gets the second
    publish(
        as_, ops["url"], [raised, f.indicator(5, modified=V2, markings=[AMBER]), lowered, f.indicator(6, modified=V2)]
    )
    publish(as_, ops["url"], [f.indicator(7)])  # the newest row of the hub waits for a later run anyway
    [outcome] = run_later(hub)
    assert outcome.archived == 1
    assert [(a.stix_id, a.version) for a in archived(hub)] == [(lowered["id"], V1)]
    got = as_("mycert").get(ops["url"] + f"{raised['id']}/")
    assert got.status_code == 200 and ids(got.get_json()) == [(raised["id"], V1)]


def test_the_version_with_the_highest_pk_waits_for_a_later_run(hub, ops, as_):
    """An older version published last holds the highest pk: archived once a newer row exists, never before."""
    obj = f.indicator(1)
    publish(as_, ops["url"], [f.indicator(1, modified=V2)])
    publish(as_, ops["url"], [obj])
    assert run_later(hub)[0].archived == 0
    assert stored(hub, ops["shared"]) == [(obj["id"], V2), (obj["id"], V1)]
    publish(as_, ops["kept_url"], [f.indicator(2)])
    assert run_later(hub)[0].archived == 1
    assert stored(hub, ops["shared"]) == [(obj["id"], V2)]
    with hub.session(write=False) as s:
        pks = set(s.scalars(select(m.ObjectVersion.pk)))
    assert not pks & {a.pk for a in archived(hub)}


def test_dry_run_changes_nothing(hub, ops, as_):
    publish(as_, ops["url"], [f.indicator(1), f.indicator(1, modified=V2), f.indicator(2)])

    def state() -> tuple:
        with hub.session(write=False) as s:
            return (
                tuple(
                    s.execute(select(m.ObjectVersion.pk, m.ObjectVersion.date_added).order_by(m.ObjectVersion.pk)).all()
                ),
                s.scalar(select(func.count()).select_from(m.ArchivedVersion)),
                s.scalar(select(func.count()).select_from(m.AuditEvent)),
                auditlog.audit_head(s),
            )

    before = state()
    [outcome] = run_later(hub, dry_run=True)
    assert outcome.archived == 1 and "would archive 1 superseded versions" in outcome.summary(dry_run=True)
    assert state() == before
    assert run_later(hub)[0].archived == 1
    assert state() != before


def test_cli_run_and_dry_run_print_one_line_per_collection(hub, ops, as_, settings, tmp_path):
    publish(as_, ops["url"], [f.indicator(1), f.indicator(1, modified=V2), f.indicator(2)])
    publish(as_, ops["kept_url"], [f.indicator(1), f.indicator(1, modified=V2)])
    with hub.session() as s:  # everything was published three days ago; shared keeps superseded versions 2 days
        s.execute(text("UPDATE object_versions SET date_added = date_added - :shift"), {"shift": 3 * DAY_US})
        s.execute(update(m.Collection).where(m.Collection.uuid == ops["shared"]).values(retention_days=2))
    # Standard output apart: the progress records go to standard error.
    runner, env = CliRunner(mix_stderr=False), f.cli_env(settings["database_url"], tmp_path)
    before = stored(hub, ops["shared"])

    dry = runner.invoke(main, ["retention", "run", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.stderr
    [line] = dry.stdout.splitlines()
    assert line.startswith("dprk/shared: would archive 1 superseded versions added before ")
    assert line.endswith("(retention 2 days)")
    assert stored(hub, ops["shared"]) == before and archived(hub) == []

    done = runner.invoke(main, ["retention", "run"], env=env)
    assert done.exit_code == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("dprk/shared: archived 1 superseded versions") and line.endswith("1 batch)")
    assert stored(hub, ops["shared"]) == [(f.indicator(1)["id"], V2), (f.indicator(2)["id"], V1)]
    assert len(stored(hub, ops["kept"])) == 2
    [event] = audit_events(hub, "retention.run")
    assert event.actor == "cli" and orjson.loads(event.detail)["archived"] == {"dprk/shared": 1}

    bad = runner.invoke(main, ["retention", "run", "--batch-size", "0"], env=env)
    assert bad.exit_code == 1 and "--batch-size" in bad.stderr


def test_cli_says_so_when_no_collection_has_a_retention(hub, ops, settings, tmp_path):
    with hub.session() as s:
        s.execute(update(m.Collection).values(retention_days=None))
    out = CliRunner().invoke(main, ["retention", "run"], env=f.cli_env(settings["database_url"], tmp_path))
    assert out.exit_code == 0 and out.output == "no collection has retention_days: every version is kept\n"


# --------------------------------------------------------------------- paging across a run


def _published_in_mixed_order(as_, ops) -> None:
    """Old versions and new ones interleaved in date_added order, over several envelopes."""
    publish(as_, ops["url"], [f.indicator(n) for n in range(12)])
    publish(as_, ops["url"], [f.indicator(n, modified=V2) for n in range(0, 12, 2)])
    publish(as_, ops["url"], [f.indicator(n) for n in range(12, 16)])
    publish(as_, ops["url"], [f.indicator(n, modified=V2) for n in range(1, 12, 2)])
    publish(as_, ops["url"], [f.indicator(n, modified=V3) for n in range(0, 4)])


@pytest.mark.parametrize("resume", ["next", "added_after"])
@pytest.mark.parametrize("versions", ["all", "last"])
def test_paging_resumed_after_a_run_returns_every_stored_version_exactly_once(hub, ops, as_, resume, versions):
    _published_in_mixed_order(as_, ops)
    cisa = as_("cisa")
    params = {"limit": "7", "match[version]": versions}
    first = cisa.get(ops["url"], params)
    body = first.get_json()
    assert body["more"] is True and len(body["objects"]) == 7
    got = ids(body)

    assert run_later(hub)[0].archived == 16  # 12 first versions and 4 second ones
    left = stored(hub, ops["shared"])
    assert len(left) == 16 and not set(left) & {(a.stix_id, a.version) for a in archived(hub)}

    if resume == "next":
        follow = {"next": body["next"]}
    else:
        follow = {**params, "added_after": first.headers["X-TAXII-Date-Added-Last"]}
    rest: list[tuple[str, str]] = []
    while True:
        page = cisa.get(ops["url"], follow)
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        rest += ids(body)
        if resume == "next" and body.get("more"):
            follow = {"next": body["next"]}
        elif resume == "added_after" and body.get("objects"):
            follow = {**params, "added_after": page.headers["X-TAXII-Date-Added-Last"]}
        else:
            break

    assert len(rest) == len(set(rest)) and not set(rest) & set(got)
    wanted = left if versions == "all" else [(i, v) for i, v in left if v == max(w for j, w in left if j == i)]
    assert set(wanted) <= set(got) | set(rest)  # every version still stored, exactly once
    assert not set(rest) - set(left)  # and nothing that was archived
    assert rest == [x for x in wanted if x not in got]  # in date_added order


# --------------------------------------------------------------------- TAXII endpoints


def test_versions_endpoint_and_match_all_no_longer_list_archived_versions(hub, ops, as_):
    obj = f.indicator(1)
    publish(as_, ops["url"], [obj, f.indicator(1, modified=V2), f.indicator(1, modified=V3)])
    cisa = as_("cisa")
    versions_url = ops["url"] + obj["id"] + "/versions/"
    manifest_url = ops["url"].replace("objects/", "manifest/")
    assert cisa.get(versions_url).get_json()["versions"] == [V1, V2, V3]

    run_later(hub)
    assert cisa.get(versions_url).get_json()["versions"] == [V3]
    assert ids(cisa.get(ops["url"], {"match[version]": "all"}).get_json()) == [(obj["id"], V3)]
    assert ids(cisa.get(ops["url"] + obj["id"] + "/", {"match[version]": "all"}).get_json()) == [(obj["id"], V3)]
    assert ids(cisa.get(ops["url"], {"match[version]": "first"}).get_json()) == [(obj["id"], V3)]
    assert [o["version"] for o in cisa.get(manifest_url, {"match[version]": "all"}).get_json()["objects"]] == [V3]


def test_publishing_an_archived_version_again_is_a_duplicate_not_a_new_version(hub, ops, as_):
    obj = f.indicator(1)
    publish(as_, ops["url"], [obj, f.indicator(1, modified=V2)])
    run_later(hub)
    again = as_("krcert").post(ops["url"], [obj]).get_json()
    assert again["success_count"] == 1  # an exact duplicate, as TAXII asks
    changed = as_("krcert").post(ops["url"], [{**obj, "name": "rewritten"}]).get_json()
    assert changed["failure_count"] == 1 and "versions are immutable" in changed["failures"][0]["message"]
    assert stored(hub, ops["shared"]) == [(obj["id"], V2)]


# --------------------------------------------------------------------- the delivery ledger


def received(hub, stix_id: str, version: str | None = None) -> list[tuple[str, str]]:
    with hub.session(write=False) as s:
        return [(r.partner, r.version) for r in ledger.who_received(s, hub.snapshot(s), stix_id, version)]


def test_who_received_answers_for_an_archived_version(hub, ops, as_, settings, tmp_path):
    obj = f.indicator(1)
    publish(as_, ops["url"], [obj])
    as_("cisa").get(ops["url"])  # cisa receives V1
    publish(as_, ops["url"], [f.indicator(1, modified=V2)])
    as_("cisa").get(ops["url"], {"match[version]": "first"})  # V1 again: still the first version
    before = received(hub, obj["id"], V1)
    assert before == [("cisa", V1), ("cisa", V1)]

    run_later(hub)
    assert [a.version for a in archived(hub)] == [V1]
    assert received(hub, obj["id"], V1) == before
    # After the run V2 is the first version stored: a "first" page now delivers V2, and only V2.
    served = as_("mycert").get(ops["url"], {"match[version]": "first"}).get_json()
    assert ids(served) == [(obj["id"], V2)]
    assert received(hub, obj["id"], V2) == [("mycert", V2)]
    assert received(hub, obj["id"], V1) == before

    out = CliRunner().invoke(
        main, ["ledger", "who-received", obj["id"], "--version", V1], env=f.cli_env(settings["database_url"], tmp_path)
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert len(lines) == 3 and all(line.startswith("cisa ") and line.endswith(V1) for line in lines[1:])


def test_backup_and_restore_keep_the_archive(make_app, settings, empty_database, tmp_path):
    app = make_app()
    hub = app.extensions["cti_hub"]
    world_ = small_world(hub)
    with hub.session() as s:
        s.execute(update(m.Collection).where(m.Collection.uuid == world_["shared"]).values(retention_days=30))
    krcert = f.Client(app.test_client(), world_["keys"]["krcert"])
    obj = f.indicator(1)
    krcert.post(world_["url"], [obj])
    f.Client(app.test_client(), world_["keys"]["cisa"]).get(world_["url"])
    krcert.post(world_["url"], [f.indicator(1, modified=V2)])
    run_later(hub)
    before = (received(hub, obj["id"], V1), [(a.pk, a.stix_id, a.version, a.raw) for a in archived(hub)])
    assert before[0] == [("cisa", V1)] and len(before[1]) == 1

    runner, backup_file = CliRunner(), tmp_path / "hub.backup"
    done = runner.invoke(main, ["backup", str(backup_file)], env=f.cli_env(settings["database_url"], tmp_path))
    assert done.exit_code == 0, done.output
    restored = runner.invoke(main, ["restore", str(backup_file)], env=f.cli_env(empty_database, tmp_path))
    assert restored.exit_code == 0, restored.output

    again = make_app(database_url=empty_database).extensions["cti_hub"]
    assert (received(again, obj["id"], V1), [(a.pk, a.stix_id, a.version, a.raw) for a in archived(again)]) == before
    with again.session(write=False) as s:
        days = s.scalar(select(m.Collection.retention_days).where(m.Collection.uuid == world_["shared"]))
    assert days == 30


# --------------------------------------------------------------------- sharing.yaml

YAML = """\
hub: {name: "Test hub"}
partners:
  - {id: krcert, name: "KrCERT/CC", country: KR}
api_roots:
  - id: dprk
    title: "DPRK"
    collections:
      - alias: iocs
        title: "IOCs"
        max_tlp: AMBER
        readers: ["*"]
        writers: ["partner:krcert"]
"""


def test_sharing_yaml_sets_plans_and_exports_retention(app, settings, tmp_path):
    runner, env = CliRunner(), f.cli_env(settings["database_url"], tmp_path)
    path = tmp_path / "sharing.yaml"

    def apply(extra: str, *flags: str):
        path.write_text(YAML + extra)
        return runner.invoke(main, ["sharing", "apply", str(path), *flags], env=env)

    added = apply("        retention_days: 30\n")
    assert added.exit_code == 0, added.output
    assert "+ collection dprk/iocs (IOCs;" in added.output and "retention 30 days)" in added.output
    assert apply("        retention_days: 30\n").output.endswith("the database matches the file\n")
    planned = apply("        retention_days: 90\n", "--dry-run")
    assert "~ collection dprk/iocs: retention_days 30 -> 90" in planned.output
    assert apply("        retention_days: 90\n").exit_code == 0

    exported = runner.invoke(main, ["sharing", "export"], env=env)
    assert exported.exit_code == 0 and "retention_days: 90" in exported.output
    path.write_text(exported.output)
    again = runner.invoke(main, ["sharing", "apply", str(path)], env=env)
    assert again.output.endswith("the database matches the file\n"), again.output

    assert "~ collection dprk/iocs: retention_days 90 -> none" in apply("").output  # absent: keep every version
    assert "retention_days" not in runner.invoke(main, ["sharing", "export"], env=env).output
    hub = app.extensions["cti_hub"]
    with hub.session(write=False) as s:
        assert s.scalar(select(m.Collection.retention_days).where(m.Collection.alias == "iocs")) is None
    assert [orjson.loads(e.detail)["change"] for e in audit_events(hub, "sharing.apply") if "retention" in e.detail][
        -1
    ] == "~ collection dprk/iocs: retention_days 90 -> none"


@pytest.mark.parametrize("value", ["0", "-5", "30d", "1.5", "true", "36501", "[30]", "forever", "'30'"])
def test_bad_retention_in_sharing_yaml_is_refused_naming_the_line(app, settings, tmp_path, value):
    runner, env = CliRunner(), f.cli_env(settings["database_url"], tmp_path)
    path = tmp_path / "sharing.yaml"
    path.write_text(YAML)
    assert runner.invoke(main, ["sharing", "apply", str(path)], env=env).exit_code == 0
    path.write_text(YAML + f"        retention_days: {value}\n")
    out = runner.invoke(main, ["sharing", "apply", str(path)], env=env)
    assert out.exit_code == 1
    line = len(YAML.splitlines()) + 1
    assert f"{path}:{line}: bad retention_days of collection dprk/iocs" in out.output
    assert "whole number of days from 1 to 36500" in out.output
    with app.extensions["cti_hub"].session(write=False) as s:
        assert s.scalar(select(m.Collection.retention_days).where(m.Collection.alias == "iocs")) is None


# --------------------------------------------------------------------- admin panel


@pytest.fixture
def world(hub):
    return panel_world(hub)


def retention_of(hub, uuid: str) -> int | None:
    with hub.session(write=False) as s:
        return s.scalar(select(m.Collection.retention_days).where(m.Collection.uuid == uuid))


def collection_form(client, world_: dict, **extra: str) -> dict:
    return {
        "csrf_token": client.token,
        "title": "Regional",
        "max_tlp": "AMBER",
        "default_tlp": "AMBER",
        "types": "",
        "readers": "group:asean, group:rokus",
        "writers": "group:asean, group:rokus",
        **extra,
    }


def test_admin_form_sets_and_clears_the_retention(admin, world, hub):
    url = f"/admin/collections/{world['ids']['regional']}/edit"
    assert 'name="retention_days"' in admin.get(url).get_data(as_text=True)
    assert admin.post(url, data=collection_form(admin, world, retention_days="90")).status_code == 302
    assert retention_of(hub, world["ids"]["regional"]) == 90
    assert 'value="90"' in admin.get(url).get_data(as_text=True)
    assert "90 days" in admin.get("/admin/collections/").get_data(as_text=True)
    [event] = audit_events(hub, "collection.update")
    detail = orjson.loads(event.detail)
    assert detail["before"]["retention_days"] is None and detail["after"]["retention_days"] == 90

    for bad in ("0", "abc", "40000", "-1"):
        r = admin.post(url, data=collection_form(admin, world, retention_days=bad))
        assert r.status_code == 400, bad
        assert retention_of(hub, world["ids"]["regional"]) == 90
    assert "from 1 to 36500" in admin.post(url, data=collection_form(admin, world, retention_days="0")).get_data(
        as_text=True
    )

    assert admin.post(url, data=collection_form(admin, world, retention_days="")).status_code == 302
    assert retention_of(hub, world["ids"]["regional"]) is None

    new = admin.post(
        "/admin/collections/new",
        data={**collection_form(admin, world, retention_days="7"), "root": "dprk", "alias": "short"},
    )
    assert new.status_code == 302
    with hub.session(write=False) as s:
        assert s.scalar(select(m.Collection.retention_days).where(m.Collection.alias == "short")) == 7


def test_an_auditor_cannot_change_the_retention(auditor, world, hub):
    url = f"/admin/collections/{world['ids']['regional']}/edit"
    page = auditor.get(url).get_data(as_text=True)
    assert 'name="retention_days"' in page and "Save collection" not in page
    r = auditor.post(url, data=collection_form(auditor, world, retention_days="30"))
    assert r.status_code == 403
    assert retention_of(hub, world["ids"]["regional"]) is None
    assert audit_events(hub, "collection.update") == []


# --------------------------------------------------------------------- schema


def test_the_migration_creates_what_the_models_declare(hub):
    with hub.engine.connect() as conn, warnings.catch_warnings():
        # SQLite's reflection skips expression indexes (ix_versions_stix_key); the diff below is about others.
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert [d for d in diff if "archived_versions" in repr(d) or "retention_days" in repr(d)] == []


# --------------------------------------------------------------------- expiry in the feeds


def test_an_indicator_that_expires_while_a_siem_polls_moves_to_the_withdrawn_list(app, hub, ops, as_, monkeypatch):
    now = clock.now_us()
    expiring = f.indicator(
        1, pattern="[ipv4-addr:value = '203.0.113.1']", valid_until=stix.format_timestamp(now + 3600 * 1_000_000)
    )
    lasting = f.indicator(2, pattern="[ipv4-addr:value = '203.0.113.2']")
    publish(as_, ops["url"], [expiring, lasting])
    siem = app.test_client()
    headers = {"Authorization": f"Bearer {ops['keys']['cisa']}"}

    def poll(**params: str) -> list[str]:
        r = siem.get(f"/feeds/dprk/{ops['shared']}/ip.txt", headers=headers, query_string=params)
        assert r.status_code == 200
        return r.get_data(as_text=True).split()

    assert poll() == ["203.0.113.1", "203.0.113.2"] and poll(include="withdrawn") == []
    before = stored(hub, ops["shared"])
    monkeypatch.setattr(clock, "now_us", lambda: now + 7200 * 1_000_000)  # two hours later
    assert poll() == ["203.0.113.2"]
    assert poll(include="withdrawn") == ["203.0.113.1"]
    assert stored(hub, ops["shared"]) == before  # no new version was needed


REDATE_CONFIG = """
hub: {{name: "Test hub"}}
partners:
  - {{id: krcert, name: "KrCERT/CC", country: KR}}
  - {{id: cisa, name: "CISA", country: US, clearance: AMBER}}
  - {{id: mycert, name: "MyCERT", country: MY, clearance: {clearance}}}
api_roots:
  - id: dprk
    title: "DPRK"
    collections:
      - {{alias: intel, title: "Intel", max_tlp: AMBER, default_tlp: GREEN, readers: ["*"], writers: ["*"],
         retention_days: 30}}
"""


def test_the_ledger_answers_for_a_version_re_dated_and_then_archived(make_app):
    from hub import sharing

    app = make_app()
    hub = app.extensions["cti_hub"]

    def apply(clearance: str) -> None:
        with hub.session() as s:
            assert sharing.apply(s, sharing.loads(REDATE_CONFIG.format(clearance=clearance)))

    apply("GREEN")
    kr, us, my = (f.Client(app.test_client(), f.key_for(hub, slug)) for slug in ("krcert", "cisa", "mycert"))
    url = "/dprk/collections/intel/objects/"
    amber = f.indicator(1, markings=[AMBER])
    assert kr.post(url, [amber]).get_json()["success_count"] == 1
    assert ids(us.get(url).get_json()) == [(amber["id"], V1)]
    apply("AMBER")  # mycert may now read it: the version is re-dated
    assert ids(my.get(url).get_json()) == [(amber["id"], V1)]
    assert kr.post(url, [{**amber, "modified": V2}]).get_json()["success_count"] == 1

    assert run_later(hub)[0].archived == 1
    assert [a.version for a in archived(hub)] == [V1]
    assert received(hub, amber["id"], V1) == [("cisa", V1), ("mycert", V1)]


def test_status_resources_older_than_their_retention_are_deleted(hub, ops, as_, settings, tmp_path):
    old = as_("krcert").post(ops["url"], [f.indicator(1)]).get_json()["id"]
    new = as_("krcert").post(ops["url"], [f.indicator(2)]).get_json()["id"]
    with hub.session() as s:  # the first request was made eight days ago; statuses are kept seven
        s.execute(update(m.Status).where(m.Status.id == old).values(request_us=m.Status.request_us - 8 * DAY_US))
    runner, env = CliRunner(), f.cli_env(settings["database_url"], tmp_path)

    dry = runner.invoke(main, ["retention", "statuses", "--dry-run"], env=env)
    assert dry.exit_code == 0 and dry.output == (
        "would delete 1 status resources older than 7 days (status_retention_days)\n"
    ), dry.output
    assert as_("krcert").get(f"/dprk/status/{old}/").status_code == 200

    done = runner.invoke(main, ["retention", "statuses"], env=env)
    assert done.exit_code == 0 and done.output.startswith("deleted 1 status resources"), done.output
    assert as_("krcert").get(f"/dprk/status/{old}/").status_code == 404
    assert as_("krcert").get(f"/dprk/status/{new}/").get_json()["success_count"] == 1
