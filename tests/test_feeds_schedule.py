"""The scheduled sync of remote TAXII sources inside the server, under a database lease."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from feeds import schedule, taxii_source
from hub import ingest
from hub import models as m
from hub.errors import ConfigError
from hub.runtime import Hub
from tests import factories as f
from tests.live import serve_in_thread
from tests.worlds import feeds_world

SECOND = 1_000_000


@pytest.fixture
def hub(make_app) -> Hub:
    """The feeds tests' world: krcert, mycert; collections shared, krlist, reference."""
    return feeds_world(make_app().extensions["cti_hub"])


@pytest.fixture
def live(hub, make_app) -> Iterator[str]:
    """A TAXII server on the feeds world's database, in a thread."""
    yield from serve_in_thread(make_app())


def collection_uuid(hub: Hub, alias: str) -> str:
    with hub.session(write=False) as s:
        return next(c.uuid for c in hub.snapshot(s).collections.values() if c.alias == alias)


def publish(hub: Hub, objects: list[dict]) -> None:
    with hub.session(write=False) as s:
        pk = hub.snapshot(s).by_slug["krcert"]
    assert not ingest.ingest_envelope(hub, pk, collection_uuid(hub, "shared"), objects).failures


def save_source(hub: Hub, name: str, url: str, settings: dict) -> None:
    """A source as `cti-hub feeds import taxii ... --source-name NAME` leaves it."""
    with hub.session() as s:
        s.add(
            m.FeedSource(
                name=name,
                kind="taxii",
                url=url,
                partner_slug="krcert",
                collection_uuid=collection_uuid(hub, "krlist"),
                settings=orjson.dumps(settings).decode(),
                cursor="",
                last_summary="",
            )
        )


def krlist_ids(hub: Hub) -> set[str]:
    with hub.session(write=False) as s:
        rows = s.scalars(
            select(m.ObjectVersion.stix_id)
            .join(m.Collection, m.Collection.id == m.ObjectVersion.collection_id)
            .where(m.Collection.alias == "krlist")
        )
        return set(rows)


def wait_for(predicate, what: str, limit: float = 60.0) -> None:
    """Poll until ``predicate()`` holds; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.05)


def syncs(source: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("cti_hub_feed_syncs_total", {"source": source, "outcome": outcome}) or 0.0


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(record.getMessage()))


@pytest.fixture
def feed_log() -> Iterator[Records]:
    handler = Records()
    schedule.LOG.addHandler(handler)
    yield handler
    schedule.LOG.removeHandler(handler)


def test_the_server_syncs_saved_sources_on_its_own(hub, live, make_app, monkeypatch, feed_log):
    monkeypatch.setenv("PEER_TOKEN", f.key_for(hub, "krcert"))
    save_source(hub, "peer", f"{live}/dprk/collections/{collection_uuid(hub, 'shared')}/", {"token_env": "PEER_TOKEN"})
    first = [f.indicator(n) for n in range(12)]
    publish(hub, first)
    app = make_app(feeds_sync_interval_seconds=1)
    scheduler = app.extensions["cti_hub_feed_scheduler"]
    try:
        wait_for(lambda: {o["id"] for o in first} <= krlist_ids(app.extensions["cti_hub"]), "first sync")
        later = [f.indicator(n) for n in range(100, 105)]
        publish(hub, later)
        wait_for(lambda: {o["id"] for o in first + later} <= krlist_ids(hub), "a later scheduled sync")
    finally:
        scheduler.stop()
    assert krlist_ids(hub) == {o["id"] for o in first + later}
    oks = [line for line in feed_log.lines if line.get("outcome") == "ok"]
    assert oks and oks[0]["source"] == "peer" and oks[0]["summary"].startswith("12 accepted")
    with hub.session(write=False) as s:
        assert s.get(m.FeedSource, "peer").cursor
    # The app without the setting starts no scheduler.
    assert "cti_hub_feed_scheduler" not in make_app().extensions


def test_interval_below_zero_is_refused(make_app):
    with pytest.raises(ConfigError, match="feeds_sync_interval_seconds"):
        make_app(feeds_sync_interval_seconds=-5)


def test_two_schedulers_on_one_database_never_sync_at_the_same_time(hub, settings):
    other = Hub(settings)  # a second process (worker or host) on the same database
    now = [10 * SECOND]
    a = schedule.Scheduler(hub, 60, holder="host-a:1", clock=lambda: now[0])
    b = schedule.Scheduler(other, 60, holder="host-b:1", clock=lambda: now[0])
    inside, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow_sync(self):
        runs.append(self.holder)
        inside.set()
        assert release.wait(30)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(schedule.Scheduler, "sync_all", slow_sync)
            worker = threading.Thread(target=a.tick)
            worker.start()
            assert inside.wait(30)
            assert b.tick() is False  # a holds the lease: b does not run
            assert a.tick() is False  # nor does a second tick of the holder itself
            release.set()
            worker.join(30)
            assert runs == ["host-a:1"]
            # Released with the next run due one interval later: nobody syncs before that.
            now[0] += 30 * SECOND
            assert (b.tick(), a.tick()) == (False, False)
            now[0] += 31 * SECOND
            assert b.tick() is True and runs == ["host-a:1", "host-b:1"]
    finally:
        other.engine.dispose()


def test_a_holder_that_died_loses_the_lease_when_it_expires(hub, settings):
    other = Hub(settings)
    try:
        t0 = 5 * SECOND
        ttl = schedule.LEASE_SECONDS * SECOND
        assert schedule.take_lease(hub, "job", "dead:1", t0, ttl)
        assert not schedule.take_lease(other, "job", "live:2", t0 + ttl - 1, ttl)
        assert schedule.take_lease(other, "job", "live:2", t0 + ttl, ttl)
        # The old holder cannot renew or release what it lost.
        assert not schedule.renew_lease(hub, "job", "dead:1", t0 + ttl, ttl)
        schedule.release_lease(hub, "job", "dead:1", 0)
        with other.session(write=False) as s:
            assert s.get(m.FeedLease, "job").holder == "live:2"
    finally:
        other.engine.dispose()


def test_concurrent_ticks_from_many_processes_never_overlap(hub, settings, monkeypatch):
    hubs = [hub, *(Hub(settings) for _ in range(3))]
    schedulers = [schedule.Scheduler(h, 0, holder=f"p{i}") for i, h in enumerate(hubs)]
    active, overlaps, runs = [0], [], []
    lock = threading.Lock()

    def counting_sync(self):
        with lock:
            active[0] += 1
            if active[0] > 1:
                overlaps.append(self.holder)
        runs.append(self.holder)
        time.sleep(0.01)
        with lock:
            active[0] -= 1

    monkeypatch.setattr(schedule.Scheduler, "sync_all", counting_sync)
    start = threading.Barrier(len(schedulers))

    def hammer(s):
        start.wait()
        for _ in range(15):
            s.tick()

    threads = [threading.Thread(target=hammer, args=(s,)) for s in schedulers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for h in hubs[1:]:
            h.engine.dispose()
    assert runs and not overlaps


def test_a_failing_source_is_reported_and_retried_while_others_sync(hub, live, monkeypatch, feed_log):
    shared = f"{live}/dprk/collections/{collection_uuid(hub, 'shared')}/"
    monkeypatch.setenv("GOOD_TOKEN", f.key_for(hub, "krcert"))
    save_source(hub, "broken", shared, {"token_env": "BROKEN_TOKEN"})
    save_source(hub, "good", shared, {"token_env": "GOOD_TOKEN"})
    publish(hub, [f.indicator(n) for n in range(5)])
    now = [SECOND]
    scheduler = schedule.Scheduler(hub, 1, holder="me", clock=lambda: now[0])
    failed_before, ok_before = syncs("broken", "failed"), syncs("good", "ok")
    assert scheduler.tick() is True
    assert syncs("broken", "failed") == failed_before + 1 and syncs("good", "ok") == ok_before + 1
    assert len(krlist_ids(hub)) == 5
    failure = next(line for line in feed_log.lines if line.get("source") == "broken")
    assert failure["outcome"] == "failed" and failure["level"] == "ERROR"
    assert failure["error"] == "environment variable BROKEN_TOKEN is not set"
    # Next tick: tried again, still failing, still counted; then fixed, it catches up.
    now[0] += 2 * SECOND
    assert scheduler.tick() is True and syncs("broken", "failed") == failed_before + 2
    monkeypatch.setenv("BROKEN_TOKEN", f.key_for(hub, "krcert"))
    now[0] += 2 * SECOND
    assert scheduler.tick() is True and syncs("broken", "ok") >= 1
    last = [line for line in feed_log.lines if line.get("source") == "broken"][-1]
    assert last["outcome"] == "ok" and last["summary"].startswith("0 accepted, 5 unchanged")
    secrets = {v for k, v in os.environ.items() if k.endswith("_TOKEN")}
    assert not any(s in orjson.dumps(feed_log.lines).decode() for s in secrets)


def test_failures_are_counted_on_metrics_and_never_kill_the_thread(hub, make_app, monkeypatch, feed_log):
    save_source(hub, "down", "http://user:pw@127.0.0.1:9/dprk/collections/x/", {})
    app = make_app()
    scheduler = schedule.Scheduler(app.extensions["cti_hub"], 0.05, holder="t")
    before = syncs("down", "failed")
    scheduler.start()
    try:
        wait_for(lambda: syncs("down", "failed") >= before + 2, "two failed syncs")
        assert scheduler._thread is not None and scheduler._thread.is_alive()
    finally:
        scheduler.stop(30)
    body = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'cti_hub_feed_syncs_total{outcome="failed",source="down"}' in body
    errors = [line["error"] for line in feed_log.lines if line.get("source") == "down"]
    assert errors and not any("pw@" in e or "user:" in e for e in errors)


def test_cli_sync_still_syncs_every_saved_source(hub, live, monkeypatch):
    from click.testing import CliRunner

    from hub.cli import main

    monkeypatch.setenv("PEER_TOKEN", f.key_for(hub, "krcert"))
    save_source(hub, "peer", f"{live}/dprk/collections/{collection_uuid(hub, 'shared')}/", {"token_env": "PEER_TOKEN"})
    publish(hub, [f.indicator(n) for n in range(3)])
    result = CliRunner().invoke(main, ["feeds", "sync"], obj=hub)
    assert result.exit_code == 0 and "peer: 3 accepted, 0 unchanged, 0 refused" in result.output
    assert [r.name for r in taxii_source.saved_sources(hub)] == ["peer"]
