"""Progress of the long commands: JSON records on a standard error that is not a terminal, a live display
on one, nothing under --quiet; standard output stays each command's result.

Each command's records must start before its work ends (the first one reports part of the work
done), carry the right final counts and end every phase with one ``finished`` record.
"""

from __future__ import annotations

import io
import re
import sqlite3
import threading
import time
from types import SimpleNamespace

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import text, update

from feeds import taxii_source
from hub import ingest, retention
from hub import models as m
from hub.cli import main, ops
from hub.cli.progress import Progress
from tests import factories as f
from tests.conftest import DATA
from tests.live import serve_in_thread
from tests.worlds import feeds_world, intel_config, small_world

IMPORT = ["--partner", "krcert", "--collection", "shared"]
AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"


def invoke(args: list[str], **kwargs) -> Result:
    """Run ``cti-hub`` with standard output and standard error apart (CliRunner's streams are no terminal)."""
    return CliRunner(mix_stderr=False).invoke(main, args, **kwargs)


def records(result: Result, operation: str) -> list[dict]:
    """The progress records on standard error, checked for shape: every line of it must be one."""
    found = [orjson.loads(line) for line in result.stderr.splitlines()]
    assert found, "no progress records on standard error"
    elapsed, counts, ended = -1.0, {}, set()
    for record in found:
        assert record["progress"] == operation
        assert set(record) - {"finished", "failed"} == {"progress", "phase", "done", "total", "unit", "elapsed_s"}
        assert record["elapsed_s"] >= elapsed
        assert record["phase"] not in ended, f"a record after the end of phase {record['phase']}"
        assert record["done"] >= counts.get(record["phase"], 0)
        elapsed, counts[record["phase"]] = record["elapsed_s"], record["done"]
        if record.get("finished") or record.get("failed"):
            ended.add(record["phase"])
    assert ended == set(counts), "every phase ends with a final record"
    return found


def finals(found: list[dict]) -> dict[str, tuple[int, int | None, str]]:
    """(done, total, unit) of each phase's final record."""
    return {r["phase"]: (r["done"], r["total"], r["unit"]) for r in found if r.get("finished")}


def started_early(found: list[dict]) -> None:
    first = found[0]
    assert first["total"] is None or first["done"] < first["total"], f"the first record came at the end: {first}"
    assert not first.get("finished")


# --------------------------------------------------------------------- the reporter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_json_records_come_at_once_then_at_most_once_an_interval_and_each_phase_ends_with_its_count():
    clock, stream = Clock(), io.StringIO()
    with Progress("import", stream=stream, terminal=False, clock=clock) as report:
        for at, phase, done, total in [
            (100.1, "read", 1, 10),  # the first: written at once
            (100.5, "read", 4, 10),
            (101.0, "read", 9, 10),
            (101.2, "read", 10, 10),  # a second after the first: written
            (101.3, "store", 0, 10),  # ends "read" with its final count
            (101.9, "store", 5, 10),
            (102.4, "store", 10, 10),
        ]:
            clock.now = at
            report(phase, done, total, unit="rows" if phase == "read" else "objects")
        clock.now = 102.6
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["phase"], r["done"], r["elapsed_s"], r.get("finished", False)) for r in lines] == [
        ("read", 1, 0.1, False),
        ("read", 10, 1.2, False),
        ("read", 10, 1.3, True),
        ("store", 10, 2.4, False),
        ("store", 10, 2.6, True),
    ]
    assert lines[0] == {"progress": "import", "phase": "read", "done": 1, "total": 10, "unit": "rows", "elapsed_s": 0.1}


def test_a_failure_marks_the_last_record_and_quiet_writes_nothing():
    stream = io.StringIO()
    with pytest.raises(RuntimeError), Progress("backup", stream=stream, terminal=False) as report:
        report("tables", 3, None, unit="tables")
        raise RuntimeError("pg_dump died")
    *_, last = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert last["failed"] is True and last["done"] == 3 and last["total"] is None and "finished" not in last

    quiet = io.StringIO()
    with Progress("backup", stream=quiet, terminal=False, enabled=False) as report:
        report("tables", 3, 5, unit="tables")
    assert quiet.getvalue() == ""


def test_on_a_terminal_a_live_display_without_a_refresh_thread():
    stream = io.StringIO()
    threads = threading.active_count()
    with Progress("import", stream=stream, terminal=True) as report:
        report("read", 3, 10, unit="rows")
        # No thread: an import forks its validation process only while it has a single thread.
        assert threading.active_count() == threads
        report("store", 7, None, unit="objects")
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stream.getvalue())
    assert re.search(r"import: read .* 3/10 rows", shown) and "10/10" not in shown
    assert re.search(r"import: store .* 7/7\s+objects", shown)  # a phase of unknown size fills when it ends
    assert "{" not in shown


# --------------------------------------------------------------------- imports


@pytest.fixture
def hub(make_app):
    return feeds_world(make_app().extensions["cti_hub"])


def summary(result: Result) -> int:
    """Objects the import handed to the hub: accepted + unchanged + refused by the hub's checks."""
    accepted, unchanged, refused = (int(part.split()[0]) for part in result.stdout.split(":")[0].split(", "))
    return accepted + unchanged + refused


def test_csv_import_reports_rows_read_then_objects_stored(hub, tmp_path):
    rows = 2500
    csv = tmp_path / "dprk-c2.csv"
    csv.write_text("value,type,notes\n" + "".join(f"c2-{n}.example.org,domain,C2 {n}\n" for n in range(rows)))

    done = invoke(["feeds", "import", "csv", str(csv), *IMPORT], obj=hub)
    assert done.exit_code == 0, done.stderr
    assert done.stdout == f"{rows} accepted, 0 unchanged, 0 refused\n"
    found = records(done, "import")
    started_early(found)
    assert found[0]["phase"] == "read" and found[0]["done"] == 1
    assert finals(found) == {"read": (rows, rows, "rows"), "store": (rows, rows, "objects")}

    again = invoke(["--quiet", "feeds", "import", "csv", str(csv), *IMPORT], obj=hub)
    assert again.exit_code == 0 and again.stderr == ""
    assert again.stdout == f"0 accepted, {rows} unchanged, 0 refused\n"


@pytest.mark.parametrize(
    ("kind", "source", "unit", "args"),
    [
        ("text", "iocs/talos-2022-09-lazarus-three-rats.txt", "lines", IMPORT),
        ("ecs", "iocs/elastic-rustbucket.ecs.ndjson", "lines", IMPORT),
        ("stix", "ioc-stix/elastic-ref7001-kandykorn.stix21.json", "objects", IMPORT),
        ("attack", "dprk-attack.json", "objects", []),  # more than 2,000: the two-process pipeline
    ],
)
def test_every_file_import_reports_what_it_read_and_stored(hub, kind, source, unit, args):
    path = DATA / source
    done = invoke(["feeds", "import", kind, str(path), *args], obj=hub)
    assert done.exit_code == 0, done.stderr
    quiet = invoke(["--quiet", "feeds", "import", kind, str(path), *args], obj=hub)
    assert quiet.exit_code == 0 and quiet.stderr == ""
    found = records(done, "import")
    started_early(found)
    if kind in ("text", "ecs"):
        read = len(path.read_text(encoding="utf-8-sig").splitlines())
    else:
        read = len(orjson.loads(path.read_bytes())["objects"])
    stored = summary(done)
    assert stored == summary(quiet) > 0
    assert finals(found) == {"read": (read, read, unit), "store": (stored, stored, "objects")}


def test_misp_import_counts_events(hub, tmp_path):
    def event(n: int) -> dict:
        uid = f"5e2b7d0c-0000-4000-8000-{n:012d}"
        return {
            "Event": {
                "uuid": uid,
                "info": f"Lazarus infrastructure {n}",
                "date": "2025-10-14",
                "timestamp": "1760428800",
                "published": True,
                "distribution": "1",
                "Orgc": {"name": "Example CERT", "uuid": "7b3b3e6f-1c2d-4f5e-8a9b-0c1d2e3f4a5b"},
                "Attribute": [
                    {
                        "uuid": f"6e2b7d0c-0000-4000-8000-{n:012d}",
                        "type": "ip-dst",
                        "category": "Network activity",
                        "to_ids": True,
                        "value": f"203.0.113.{n}",
                        "timestamp": "1760428800",
                    }
                ],
            }
        }

    events = tmp_path / "events.json"
    events.write_bytes(orjson.dumps([event(n) for n in range(1, 4)]))
    done = invoke(["feeds", "import", "misp", str(events), *IMPORT], obj=hub)
    assert done.exit_code == 0, done.stderr
    found = records(done, "import")
    started_early(found)
    assert found[0] == {**found[0], "phase": "read", "done": 1, "total": 3, "unit": "events"}
    stored = summary(done)
    assert stored > 3 and finals(found) == {"read": (3, 3, "events"), "store": (stored, stored, "objects")}


def test_taxii_import_and_feeds_sync_count_the_objects_pulled(hub, make_app, monkeypatch):
    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        krcert = snap.by_slug["krcert"]
        shared = next(c.uuid for c in snap.collections.values() if c.alias == "shared")
    assert not ingest.ingest_envelope(hub, krcert, shared, [f.indicator(n) for n in range(25)]).failures
    monkeypatch.setenv("PEER_TOKEN", f.key_for(hub, "krcert"))
    monkeypatch.setattr(taxii_source, "PER_REQUEST", 10)
    server = serve_in_thread(make_app())
    url = f"{next(server)}/dprk/collections/{shared}/"
    try:
        args = ["feeds", "import", "taxii", url, "--partner", "krcert", "--collection", "krlist"]
        done = invoke([*args, "--token-env", "PEER_TOKEN", "--source-name", "peer"], obj=hub)
        assert done.exit_code == 0, done.stderr
        assert done.stdout == "25 accepted, 0 unchanged, 0 refused\n"
        found = records(done, "import")
        assert found[0] == {**found[0], "phase": "pull", "done": 10, "total": None}  # after the first page
        assert finals(found) == {"pull": (25, None, "objects")}

        more = [f.indicator(n) for n in range(100, 105)]
        assert not ingest.ingest_envelope(hub, krcert, shared, more).failures
        synced = invoke(["feeds", "sync"], obj=hub)
        assert synced.exit_code == 0, synced.stderr
        assert synced.stdout == "peer: 5 accepted, 0 unchanged, 0 refused\n"
        assert finals(records(synced, "sync")) == {"peer": (5, None, "objects")}
    finally:
        next(server, None)


# --------------------------------------------------------------------- retention and sharing apply


def test_retention_run_reports_each_batch_of_each_collection(make_app, settings, tmp_path):
    hub = make_app().extensions["cti_hub"]
    world = small_world(hub)
    with hub.session(write=False) as s:
        krcert = hub.snapshot(s).by_slug["krcert"]
    objects = [f.indicator(n) for n in range(5)] + [
        f.indicator(n, modified="2024-06-01T00:00:00.000Z") for n in range(5)
    ]
    assert not ingest.ingest_envelope(hub, krcert, world["shared"], objects).failures
    with hub.session() as s:  # published three days ago; superseded versions are kept two days
        s.execute(text("UPDATE object_versions SET date_added = date_added - :shift"), {"shift": 3 * retention.DAY_US})
        s.execute(update(m.Collection).where(m.Collection.uuid == world["shared"]).values(retention_days=2))
    env = f.cli_env(settings["database_url"], tmp_path)

    dry = invoke(["retention", "run", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.startswith("dprk/shared: would archive 5 superseded versions") and dry.stdout.count("\n") == 1
    assert finals(records(dry, "retention")) == {"count": (1, 1, "collections")}

    done = invoke(["retention", "run", "--batch-size", "2"], env=env)
    assert done.exit_code == 0, done.stderr
    [line] = done.stdout.splitlines()
    assert line.startswith("dprk/shared: archived 5 superseded versions") and line.endswith("3 batches)")
    found = records(done, "retention")
    started_early(found)
    assert found[0] == {**found[0], "phase": "dprk/shared", "done": 0, "total": 5}
    assert finals(found) == {"dprk/shared": (5, 5, "versions")}


def test_sharing_apply_reports_changes_then_the_re_dating(make_app, settings, tmp_path):
    hub = make_app().extensions["cti_hub"]
    env = f.cli_env(settings["database_url"], tmp_path)
    config = tmp_path / "sharing.yaml"
    config.write_text(intel_config({"krcert": "RED", "mycert": "GREEN"}))
    first = invoke(["sharing", "apply", str(config)], env=env)
    assert first.exit_code == 0, first.stderr
    *changes, last = first.stdout.splitlines()
    assert last == f"{len(changes)} changed" and len(changes) > 2
    found = records(first, "sharing apply")
    started_early(found)
    assert found[0] == {**found[0], "phase": "changes", "done": 1, "total": len(changes)}
    assert finals(found)["changes"] == (len(changes), len(changes), "changes")

    with hub.session(write=False) as s:
        snap = hub.snapshot(s)
        krcert = snap.by_slug["krcert"]
        intel = next(c.uuid for c in snap.collections.values() if c.alias == "intel")
    amber = [f.indicator(n, markings=[AMBER]) for n in range(3)]
    assert not ingest.ingest_envelope(hub, krcert, intel, amber).failures
    config.write_text(intel_config({"krcert": "RED", "mycert": "AMBER"}))  # mycert may now see the three
    raised = invoke(["sharing", "apply", str(config)], env=env)
    assert raised.exit_code == 0, raised.stderr
    assert raised.stdout.splitlines()[-1] == "1 changed"
    phases = finals(records(raised, "sharing apply"))
    assert phases["changes"] == (1, 1, "changes") and phases["re-dating"] == (3, 3, "versions")
    assert phases["newly visible"][0] == phases["newly visible"][1] == phases["withdrawals"][0] > 0

    same = invoke(["sharing", "apply", str(config)], env=env)
    assert same.stdout == "nothing to change: the database matches the file\n" and same.stderr == ""


# --------------------------------------------------------------------- backup and restore


class SlowCopy(sqlite3.Connection):
    """A connection whose backup goes in small steps with a pause: the file a copy writes grows visibly."""

    def backup(self, target, **kwargs):  # type: ignore[override]
        return super().backup(target, pages=8, progress=lambda *_: time.sleep(0.002))


def test_backup_and_restore_report_their_progress(
    make_app, settings, empty_database, db_engine_name, tmp_path, monkeypatch
):
    hub = make_app().extensions["cti_hub"]
    world = small_world(hub)
    with hub.session(write=False) as s:
        krcert = hub.snapshot(s).by_slug["krcert"]
    assert not ingest.ingest_envelope(hub, krcert, world["shared"], [f.indicator(n) for n in range(300)]).failures
    if db_engine_name == "sqlite":  # copy in many small steps, watched often, so that the copy is seen growing
        slow = SimpleNamespace(connect=lambda *a, **k: sqlite3.connect(*a, factory=SlowCopy, **k))
        monkeypatch.setattr(ops, "sqlite3", slow)
        monkeypatch.setattr(ops, "COPY_POLL_S", 0.01)
    backup_file = tmp_path / "hub.backup"

    done = invoke(["backup", str(backup_file)], env=f.cli_env(settings["database_url"], tmp_path))
    assert done.exit_code == 0, done.stderr
    size = backup_file.stat().st_size
    assert done.stdout == f"backup written to {backup_file} ({size} bytes)\n"
    found = records(done, "backup")
    started_early(found)
    if db_engine_name == "sqlite":
        assert finals(found) == {"copy": (size, size, "bytes")}
    else:
        [(phase, (tables, total, unit))] = finals(found).items()
        assert (phase, unit) == ("tables", "tables") and tables == total >= 20

    restored = invoke(["restore", str(backup_file)], env=f.cli_env(empty_database, tmp_path))
    assert restored.exit_code == 0, restored.stderr
    assert restored.stdout.startswith(f"restored {backup_file} into ") and restored.stdout.count("\n") == 1
    found = records(restored, "restore")
    started_early(found)
    phases = finals(found)
    assert phases.pop("schema") == (1, 1, "steps")
    if db_engine_name == "sqlite":
        assert phases == {"copy": (size, size, "bytes")}
    else:
        assert phases == {"tables": (tables, tables, "tables")}
