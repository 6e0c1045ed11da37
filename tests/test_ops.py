"""Metrics, the JSON access log and the hash-chained audit trail."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import unittest.mock
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
import requests
from click.testing import CliRunner
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import delete, text, update

from hub import db, ops
from hub import models as m
from hub.cli import main
from hub.cli.ops import verify_chain
from hub.ids import HUB_NAMESPACE
from hub.runtime import Hub
from hub.store import auditlog
from tests import factories as f
from tests.live import serve_command
from tests.worlds import small_world

OBJECTS_RULE = "/<string:api_root>/collections/<string:collection_id>/objects/"


@pytest.fixture
def world(hub):
    return small_world(hub)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def access_log():
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(orjson.loads(record.getMessage()))

    handler = Collect()
    ops.ACCESS.addHandler(handler)
    yield lines
    ops.ACCESS.removeHandler(handler)


# --------------------------------------------------------------------- metrics


def rule_of(app, path: str) -> str:
    adapter = app.url_map.bind("localhost")
    endpoint, _ = adapter.match(path)
    return next(r.rule for r in app.url_map.iter_rules() if r.endpoint == endpoint)


def test_metrics_count_requests_by_url_rule_never_by_raw_path(app, world):
    rule = rule_of(app, world["url"])
    before = sample("cti_hub_http_requests_total", method="GET", endpoint=rule, status="200")
    cisa = f.Client(app.test_client(), world["keys"]["cisa"])
    assert cisa.get(world["url"]).status_code == 200
    assert cisa.get(world["url"].replace(world["shared"], "reference")).status_code == 200
    body = app.test_client().get("/metrics")
    assert body.status_code == 200
    assert body.headers["Content-Type"].startswith("text/plain")
    text_ = body.get_data(as_text=True)
    assert sample("cti_hub_http_requests_total", method="GET", endpoint=rule, status="200") == before + 2
    assert sample("cti_hub_http_request_duration_seconds_count", method="GET", endpoint=rule) >= 2
    assert world["shared"] not in text_
    assert "cti_hub_objects_delivered_total" in text_


def test_metrics_count_ingested_refused_and_delivered_objects_per_partner(app, world):
    krcert = f.Client(app.test_client(), world["keys"]["krcert"])
    ingested = sample("cti_hub_objects_ingested_total", partner="krcert")
    refused = sample("cti_hub_objects_refused_total", partner="krcert", reason="wrong_identity")
    denied = sample("cti_hub_sharing_denials_total", reason="publish_wrong_identity")
    foreign = f.indicator(99, created_by=f"identity--{uuid.uuid5(HUB_NAMESPACE, 'cisa')}")
    r = krcert.post(world["url"], [f.indicator(1), f.indicator(2), foreign])
    assert r.status_code == 202 and r.get_json()["failure_count"] == 1
    assert sample("cti_hub_objects_ingested_total", partner="krcert") == ingested + 2
    assert sample("cti_hub_objects_refused_total", partner="krcert", reason="wrong_identity") == refused + 1
    assert sample("cti_hub_sharing_denials_total", reason="publish_wrong_identity") == denied + 1

    delivered = sample("cti_hub_objects_delivered_total", partner="cisa")
    got = f.Client(app.test_client(), world["keys"]["cisa"]).get(world["url"])
    assert len(got.get_json()["objects"]) == 2
    assert sample("cti_hub_objects_delivered_total", partner="cisa") == delivered + 2


def test_failed_authentication_is_counted_as_a_denial(app, world):
    before = sample("cti_hub_sharing_denials_total", reason="authentication")
    assert f.Client(app.test_client(), "chub_wrong").get(world["url"]).status_code == 401
    assert sample("cti_hub_sharing_denials_total", reason="authentication") == before + 1


def test_rate_limited_requests_are_counted_as_a_denial(make_app):
    app = make_app(login_failure_limit=2)
    before = sample("cti_hub_sharing_denials_total", reason="rate_limited")
    codes = [f.Client(app.test_client(), "chub_wrong").get("/taxii2/").status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert sample("cti_hub_sharing_denials_total", reason="rate_limited") == before + 1


def test_metrics_add_up_across_worker_processes_in_multiprocess_mode(settings, tmp_path):
    """Two worker processes serve /healthz once each; /metrics in either reports both."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": "test-secret-key",
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    # A forked worker serves /healthz and exits; the parent serves /healthz, then /metrics.
    script = (
        "import os\nfrom hub import create_app\nc = create_app().test_client()\npid = os.fork()\n"
        "c.get('/healthz')\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\n"
        "print(c.get('/metrics').get_data(as_text=True))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=root, check=True, capture_output=True, text=True
    ).stdout
    line = next(
        x for x in out.splitlines() if x.startswith("cti_hub_http_requests_total{") and 'endpoint="/healthz"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) == 2.0


def _healthz_count(metrics: str) -> float:
    line = next(
        x for x in metrics.splitlines() if x.startswith("cti_hub_http_requests_total{") and 'endpoint="/healthz"' in x
    )
    return float(line.rsplit(" ", 1)[1])


@pytest.mark.slow
def test_serve_sets_and_empties_the_multiprocess_directory(settings, tmp_path):
    """`cti-hub serve` with 2 workers: /metrics adds up this run's workers and nothing an earlier run left."""
    stale = tmp_path / "prometheus"
    stale.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(stale), **f.cli_env(settings["database_url"], tmp_path)}
    script = "from hub import create_app\nc = create_app().test_client()\nfor _ in range(7):\n    c.get('/healthz')\n"
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)  # an earlier run's samples
    assert list(stale.glob("counter_*.db"))
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with unittest.mock.patch.dict(os.environ, environ, clear=True):
        with contextlib.contextmanager(serve_command)(settings, tmp_path, "--workers", "2") as base:
            for _ in range(12):
                assert requests.get(f"{base}/healthz", timeout=10, headers={"Connection": "close"}).ok
            metrics = requests.get(f"{base}/metrics", timeout=10).text
    assert _healthz_count(metrics) == 12  # wait_ready's own polls go to /readyz


def test_gunicorn_empties_the_multiprocess_directory_but_keeps_it(tmp_path, monkeypatch):
    """The directory may be a mount point (a tmpfs in docker-compose.yml): its contents go, it stays."""
    from hub import gunicorn_conf

    directory = tmp_path / "metrics"
    (directory / "old").mkdir(parents=True)
    (directory / "counter_41.db").write_bytes(b"stale")
    (directory / "old" / "gauge_live_7.db").write_bytes(b"stale")
    inode = directory.stat().st_ino
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    gunicorn_conf.on_starting(None)
    assert directory.stat().st_ino == inode and list(directory.iterdir()) == []
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "new" / "metrics"))
    gunicorn_conf.on_starting(None)
    assert (tmp_path / "new" / "metrics").is_dir()


def _healthz_by_worker(directory: Path) -> dict[int, float]:
    """The /healthz requests each process counted, read from its own file in the multiprocess directory."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        metrics = MultiProcessCollector.merge([str(path)], accumulate=False)
        counts[int(path.stem.rpartition("_")[2])] = sum(
            s.value
            for metric in metrics
            for s in metric.samples
            if s.name == "cti_hub_http_requests_total" and s.labels.get("endpoint") == "/healthz"
        )
    return {pid: count for pid, count in counts.items() if count}


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
def test_metrics_add_up_the_requests_both_workers_of_a_real_server_served(settings, tmp_path):
    """`cti-hub serve --workers 2`: requests (no keep-alive) spread over both workers; /metrics counts all."""
    environ = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    directory = tmp_path / "prometheus"  # cti-hub serve's default: <data_dir>/prometheus

    def healthz(_: int) -> bool:
        return requests.get(f"{base}/healthz", timeout=10, headers={"Connection": "close"}).ok

    sent, by_worker = 0, {}
    with unittest.mock.patch.dict(os.environ, environ, clear=True):
        with contextlib.contextmanager(serve_command)(settings, tmp_path, "--workers", "2") as base:
            with ThreadPoolExecutor(max_workers=6) as pool:
                while sent < 600 and len(by_worker) < 2:  # one worker may win the first accepts
                    assert all(pool.map(healthz, range(60)))
                    sent += 60
                    by_worker = _healthz_by_worker(directory)
            metrics = requests.get(f"{base}/metrics", timeout=10).text
            masters = {_parent(pid) for pid in by_worker}
    assert len(by_worker) == 2, f"one worker served all {sent} requests: {by_worker}"
    assert len(masters) == 1 and masters.pop() not in by_worker  # two workers of one gunicorn master
    assert sum(by_worker.values()) == sent
    assert _healthz_count(metrics) == sent


# --------------------------------------------------------------------- access log


def test_access_log_is_one_json_line_per_request_without_secrets(app, world, access_log):
    krcert = f.Client(app.test_client(), world["keys"]["krcert"])
    krcert.post(world["url"], [f.indicator(n) for n in range(3)])
    r = f.Client(app.test_client(), world["keys"]["cisa"]).get(
        world["url"], {"limit": "1"}, headers={"X-Request-ID": "siem-poll.42"}
    )
    token = r.get_json()["next"]
    r2 = f.Client(app.test_client(), world["keys"]["cisa"]).get(world["url"], {"limit": "1", "next": token})
    assert r.headers["X-Request-ID"] == "siem-poll.42"
    generated = r2.headers["X-Request-ID"]
    assert len(generated) == 32
    assert len(access_log) == 3
    entry = access_log[1]
    assert entry == {
        **entry,
        "request_id": "siem-poll.42",
        "method": "GET",
        "rule": OBJECTS_RULE,
        "status": 200,
        "partner": "cisa",
    }
    assert isinstance(entry["duration_ms"], float)
    assert access_log[2]["request_id"] == generated
    raw = orjson.dumps(access_log).decode()
    for secret in (*world["keys"].values(), token, "Bearer", "Authorization", world["shared"]):
        assert secret not in raw


def test_unusable_request_ids_are_replaced(app, access_log):
    r = app.test_client().get("/healthz", headers={"X-Request-ID": "bad id; drop {x}" + "y" * 200})
    assert r.headers["X-Request-ID"] != "bad id; drop {x}" + "y" * 200 and len(r.headers["X-Request-ID"]) == 32
    assert access_log[-1]["partner"] == "" and access_log[-1]["rule"] == "/healthz"
    assert app.test_client().get("/no/such/thing/here/").status_code == 404
    assert access_log[-1]["rule"] == "<unmatched>"


# --------------------------------------------------------------------- audit chain


def some_events(hub: Hub) -> None:
    with hub.session() as s:
        f.add_partner(s, "krcert")
    for n in range(3):
        f.key_for(hub, "krcert", label=f"key {n}")
    with hub.session() as s:
        auditlog.audit(s, "cli", "test.event", "target", {"n": 1}, source="127.0.0.1")


def test_audit_chain_verifies_and_links_every_event(hub):
    some_events(hub)
    with hub.session(write=False) as s:
        result = verify_chain(s, batch=2)
        events = auditlog.audit_events(s)
    assert result.problem is None and result.events == 4
    assert events[0].prev_hash == "" and all(b.prev_hash == a.hash for a, b in zip(events, events[1:]))
    assert result.head == events[-1].hash


@pytest.mark.parametrize(
    "tamper, where, why",
    [
        ("edit", "at event {2} (", "its content was edited"),
        ("delete", "at event {2} (", "the event before it was deleted or altered"),
        ("delete_tail", "after event {2}:", "the chain head records event {3}; the newest events were deleted"),
        ("rehash", "at event {3} (", "the event before it was deleted or altered"),
    ],
)
def test_audit_verify_names_the_first_broken_event(hub, tamper, where, why):
    some_events(hub)
    with hub.session(write=False) as s:
        ids = [e.id for e in auditlog.audit_events(s)]
    with hub.session() as s:
        if tamper == "edit":
            s.execute(update(m.AuditEvent).where(m.AuditEvent.id == ids[2]).values(detail='{"read_only":true}'))
        elif tamper == "delete":
            s.execute(delete(m.AuditEvent).where(m.AuditEvent.id == ids[1]))
        elif tamper == "delete_tail":
            s.execute(delete(m.AuditEvent).where(m.AuditEvent.id == ids[3]))
        else:  # an edit that also recomputes the edited event's own hash still breaks the next link
            ev = s.get(m.AuditEvent, ids[2])
            ev.target = "someone-else"
            ev.hash = auditlog.audit_hash(ev.prev_hash, {k: getattr(ev, k) for k in auditlog.AUDIT_FIELDS})
    with hub.session(write=False) as s:
        problem = verify_chain(s).problem
    assert problem is not None
    assert problem.startswith("audit chain broken " + where.format(*ids))
    assert why.format(*ids) in problem


def test_audit_chain_stays_linear_under_concurrent_writers(hub):
    with hub.session() as s:
        auditlog.audit(s, "cli", "test.start")

    def writer(n: int) -> None:
        for i in range(8):
            with hub.session() as s:
                auditlog.audit(s, f"writer{n}", "test.concurrent", detail={"i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with hub.session(write=False) as s:
        result = verify_chain(s)
    assert result.problem is None and result.events == 33


def test_upgrade_chains_audit_events_written_before_the_chain_existed(empty_database):
    from alembic import command

    engine = db.make_engine(empty_database)
    try:
        command.upgrade(db.alembic_config(engine), "0001")
        with engine.begin() as conn:
            for n in range(3):
                conn.execute(
                    text(
                        "INSERT INTO audit_events (at_us, actor, action, target, source, detail) "
                        "VALUES (:at, 'cli', 'old.event', '', '', :d)"
                    ),
                    {"at": n, "d": f'{{"n":{n}}}'},
                )
        db.upgrade(engine)
    finally:
        engine.dispose()
    hub = Hub({"database_url": empty_database, "secret_key": "k"})
    try:
        with hub.session() as s:
            auditlog.audit(s, "cli", "new.event")
        with hub.session(write=False) as s:
            result = verify_chain(s)
            first = auditlog.audit_events(s, limit=1)[0]
        assert result.problem is None and result.events == 4
        assert first.prev_hash == "" and first.hash == auditlog.audit_hash(
            "", {"at_us": 0, "actor": "cli", "action": "old.event", "target": "", "source": "", "detail": '{"n":0}'}
        )
    finally:
        hub.engine.dispose()


def test_audit_cli_verify_and_list(hub, settings, tmp_path):
    some_events(hub)
    runner = CliRunner()
    env = f.cli_env(settings["database_url"], tmp_path)
    ok = runner.invoke(main, ["audit", "verify"], env=env)
    assert ok.exit_code == 0 and "audit chain intact: 4 events" in ok.output
    listed = runner.invoke(main, ["audit", "list", "--action", "key.create"], env=env)
    assert listed.exit_code == 0 and listed.output.count("key.create") == 3
    assert "test.event" not in listed.output
    none = runner.invoke(main, ["audit", "list", "--actor", "nobody"], env=env)
    assert none.exit_code == 0 and len(none.output.splitlines()) == 1
    bad = runner.invoke(main, ["audit", "list", "--since", "yesterday"], env=env)
    assert bad.exit_code == 1 and "'yesterday' is not an RFC 3339 timestamp" in bad.output
    with hub.session() as s:
        s.execute(update(m.AuditEvent).where(m.AuditEvent.action == "test.event").values(actor="intruder"))
    broken = runner.invoke(main, ["audit", "verify"], env=env)
    assert broken.exit_code == 1 and "its content was edited" in broken.output and "by intruder" in broken.output
