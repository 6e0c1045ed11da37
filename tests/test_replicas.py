"""Reads from PostgreSQL streaming replicas (``read_database_urls``, ``hub.replicas``).

The replica tests run on a primary and a hot-standby replica of their own (``tests.pg_cluster``), in the
PostgreSQL lane (``--db=postgres``): the replica is killed and restarted while a partner publishes and
a SIEM pages with ``next`` tokens, its replay is paused to make it lag, and every object must still
reach the poller exactly once, with no cursor ever answered by a replica behind it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from hub import config, db
from hub.errors import ConfigError
from hub.replicas import parse_lsn
from tests import factories as f
from tests.conftest import fresh_database_url
from tests.live import free_port
from tests.panel import logged_in
from tests.pg_cluster import Cluster
from tests.worlds import small_world


def _reads(server: str) -> float:
    return REGISTRY.get_sample_value("cti_hub_replica_reads_total", {"server": server}) or 0.0


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": f.TAXII, "Content-Type": f.TAXII}


# --------------------------------------------------------------------- settings (every lane)


def test_read_database_urls_come_from_the_environment_as_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTI_HUB_DATABASE_URL", "postgresql://hub@primary:5432/hub")
    monkeypatch.setenv("CTI_HUB_READ_DATABASE_URLS", "postgresql://hub@r1:5432/hub, postgres://hub@r2/hub")
    monkeypatch.setenv("CTI_HUB_MAX_REPLICA_LAG_SECONDS", "30")
    settings = config.load()
    assert settings["read_database_urls"] == ["postgresql://hub@r1:5432/hub", "postgres://hub@r2/hub"]
    assert settings["max_replica_lag_seconds"] == 30


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"read_database_urls": ["sqlite:///tmp/x.db"]}, "sqlite:///tmp/x.db is not a PostgreSQL URL"),
        ({"read_database_urls": "mysql://u:secret@h/x"}, "not 'mysql'"),
        ({"read_database_urls": "postgresql://u:secret@h/x", "database_url": ""}, "database_url is not PostgreSQL"),
        ({"max_replica_lag_seconds": 0}, "must be a whole number from 1 to 3,600"),
    ],
)
def test_bad_replica_settings_are_refused_naming_the_setting(overrides: dict, message: str, tmp_path: Path) -> None:
    given = {"database_url": "postgresql://hub@primary/hub", "data_dir": str(tmp_path), **overrides}
    with pytest.raises(ConfigError) as raised:
        config.load(overrides=given)
    text = str(raised.value)
    assert message in text
    assert ("read_database_urls" in text) or ("max_replica_lag_seconds" in text)
    assert "secret" not in text  # a password in a refused URL is never echoed


def test_replica_urls_are_masked_when_shown() -> None:
    assert config.masked("read_database_urls", ["postgresql://hub:pw@r1/hub"]) == "['postgresql://hub:***@r1/hub']"


def test_lsn_parsing() -> None:
    assert parse_lsn("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert parse_lsn(None) == 0


# --------------------------------------------------------------------- a replica that is not there (PostgreSQL)


def test_a_replica_that_is_down_or_not_a_replica_is_skipped(make_app, db_engine_name: str) -> None:
    if db_engine_name != "postgres":
        pytest.skip("replicas are PostgreSQL servers")
    app = make_app()
    url = app.extensions["cti_hub"].settings["database_url"]
    nobody = f"postgresql://postgres@127.0.0.1:{free_port()}/hub"
    replica_app = make_app(read_database_urls=[nobody, url])
    hub = replica_app.extensions["cti_hub"]
    try:
        world = small_world(hub)
        with replica_app.test_client() as client:
            r = client.post(world["url"], json={"objects": [f.indicator(1)]}, headers=_headers(world["keys"]["krcert"]))
            assert r.status_code == 202
            r = client.get(world["url"], headers=_headers(world["keys"]["cisa"]))
        assert r.status_code == 200 and [o["id"] for o in r.json["objects"]] == [f.indicator(1)["id"]]
        down, primary = hub.replicas.replicas
        assert not down.usable and down.reason.startswith("down:")
        # The primary named as a replica: not in recovery, so never trusted as one.
        assert not primary.usable and primary.reason.startswith("not in recovery")
    finally:
        hub.close()


# --------------------------------------------------------------------- a real replica (PostgreSQL)


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if request.config.getoption("--db") != "postgres":
        pytest.skip("streaming replicas are PostgreSQL's: run with --db=postgres")
    pair = Cluster()
    try:
        pair.start()
        engine = db.make_engine(pair.url)
        db.upgrade(engine)
        engine.dispose()
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def replica_app(cluster: Cluster, tmp_path: Path) -> Iterator:
    """Build apps on the cluster's primary reading from its replica; each test starts on an empty hub."""
    url = fresh_database_url("postgres", cluster.url, tmp_path / "unused")
    cluster.replica_sql("SELECT pg_wal_replay_resume()")
    built = []

    def make(**overrides):
        from hub import create_app

        settings = {
            "database_url": url,
            "read_database_urls": [cluster.replica_url],
            "data_dir": str(tmp_path),
            "secret_key": "test-secret-key",
            "rate_limit_per_minute": 0,
            **overrides,
        }
        app = create_app(settings)
        built.append(app)
        return app

    yield make
    cluster.replica_sql("SELECT pg_wal_replay_resume()")
    for app in built:
        app.extensions["cti_hub"].close()


@pytest.mark.slow
def test_replica_killed_and_restarted_mid_poll_delivers_every_object_once(cluster: Cluster, replica_app) -> None:
    app = replica_app(max_replica_lag_seconds=5)
    hub = app.extensions["cti_hub"]
    world = small_world(hub)
    cluster.wait_caught_up()
    sent: list[str] = []
    failures: list[str] = []
    done = threading.Event()

    def publish() -> None:
        client = app.test_client()
        try:
            for envelope in range(40):
                objects = [f.indicator(envelope * 20 + i) for i in range(20)]
                r = client.post(world["url"], json={"objects": objects}, headers=_headers(world["keys"]["krcert"]))
                if r.status_code != 202:
                    failures.append(f"POST {r.status_code}: {r.get_data(as_text=True)[:200]}")
                    return
                sent.extend(o["id"] for o in objects)
                time.sleep(0.04)
        finally:
            done.set()

    publisher = threading.Thread(target=publish)
    publisher.start()
    client = app.test_client()
    received: list[str] = []
    phases = {"before": (_reads("replica"), _reads("primary"))}
    params: dict[str, str] = {"limit": "25"}
    killed_at = restarted_at = None
    deadline = time.monotonic() + 50
    try:
        while time.monotonic() < deadline:
            r = client.get(world["url"], query_string=params, headers=_headers(world["keys"]["cisa"]))
            assert r.status_code == 200, r.get_data(as_text=True)
            body = r.json
            received += [o["id"] for o in body.get("objects", [])]
            if body.get("more"):
                params = {"limit": "25", "next": body["next"]}
            else:
                params = {"limit": "25", "added_after": r.headers["X-TAXII-Date-Added-Last"]}
            if killed_at is None and len(received) >= 150:
                phases["killed"] = (_reads("replica"), _reads("primary"))
                cluster.kill_replica()
                killed_at = time.monotonic()
            elif killed_at is not None and restarted_at is None and time.monotonic() - killed_at > 1.5:
                phases["restarted"] = (_reads("replica"), _reads("primary"))
                cluster.start_replica()
                restarted_at = time.monotonic()
            served_again = restarted_at is not None and _reads("replica") - phases["restarted"][0] >= 5
            if done.is_set() and not body.get("more") and len(received) >= len(sent) and served_again:
                break
            if not body.get("objects"):
                time.sleep(0.02)
    finally:
        publisher.join()
    assert not failures
    assert restarted_at is not None, "the poll ended before the replica was killed and restarted"
    repeats = [i for i, n in Counter(received).items() if n > 1]
    assert not repeats, f"{len(repeats)} objects delivered more than once"
    assert set(received) == set(sent) and len(sent) == 800, f"{len(set(sent) - set(received))} objects never delivered"
    # The replica answered before the kill, the primary while it was down, the replica again after.
    assert phases["killed"][0] > phases["before"][0]
    assert phases["restarted"][1] > phases["killed"][1]
    assert _reads("replica") > phases["restarted"][0]


@pytest.mark.slow
def test_a_cursor_past_what_the_replica_replayed_is_answered_by_the_primary(cluster: Cluster, replica_app) -> None:
    app = replica_app(max_replica_lag_seconds=60)
    hub = app.extensions["cti_hub"]
    world = small_world(hub)
    key = world["keys"]["cisa"]
    client = app.test_client()
    old = [f.indicator(n) for n in range(10)]
    assert (
        client.post(world["url"], json={"objects": old}, headers=_headers(world["keys"]["krcert"])).status_code == 202
    )
    cluster.wait_caught_up()
    hub.replicas.check()
    cluster.replica_sql("SELECT pg_wal_replay_pause()")
    new = [f.indicator(n) for n in range(10, 20)]
    assert (
        client.post(world["url"], json={"objects": new}, headers=_headers(world["keys"]["krcert"])).status_code == 202
    )
    hub.replicas.check()
    [replica] = hub.replicas.replicas
    assert replica.usable, replica.reason  # behind, but by less than 60 s

    # Without a cursor the replica may answer: it holds the first envelope only (the primary holds both).
    r = client.get(world["url"], query_string={"limit": "10"}, headers=_headers(key))
    assert [o["id"] for o in r.json["objects"]] == [o["id"] for o in old] and r.json["more"] is False
    # A token the replica has reached: the replica continues it.
    page = client.get(world["url"], query_string={"limit": "5"}, headers=_headers(key))
    before = _reads("replica")
    rest = client.get(world["url"], query_string={"limit": "5", "next": page.json["next"]}, headers=_headers(key))
    assert [o["id"] for o in rest.json["objects"]] == [o["id"] for o in old[5:]]
    assert _reads("replica") == before + 1

    # Past the replica's replay position: the primary answers, for added_after and for next tokens alike.
    last = stamp_plus_one(r.headers["X-TAXII-Date-Added-Last"])
    primary_reads = _reads("primary")
    first = client.get(world["url"], query_string={"limit": "5", "added_after": last}, headers=_headers(key))
    assert [o["id"] for o in first.json["objects"]] == [o["id"] for o in new[:5]] and first.json["more"] is True
    second = client.get(world["url"], query_string={"limit": "5", "next": first.json["next"]}, headers=_headers(key))
    assert [o["id"] for o in second.json["objects"]] == [o["id"] for o in new[5:]]
    assert _reads("primary") == primary_reads + 2


def stamp_plus_one(stamp: str) -> str:
    """One microsecond after an X-TAXII-Date-Added value (``2025-01-01T00:00:00.000001Z``)."""
    from hub import stix

    return stix.format_timestamp(stix.parse_filter_timestamp(stamp) + 1)


@pytest.mark.slow
def test_lag_is_judged_against_the_primarys_position_not_the_clock(cluster: Cluster, replica_app) -> None:
    app = replica_app(max_replica_lag_seconds=1)
    hub = app.extensions["cti_hub"]
    world = small_world(hub)
    cluster.wait_caught_up()
    time.sleep(2.5)  # an idle primary: the replica's last replayed transaction is older than the lag allowed
    hub.replicas.check()
    [replica] = hub.replicas.replicas
    assert replica.usable and replica.lag_s == 0.0, replica.reason

    cluster.replica_sql("SELECT pg_wal_replay_pause()")
    client = app.test_client()
    objects = [f.indicator(n) for n in range(3)]
    assert (
        client.post(world["url"], json={"objects": objects}, headers=_headers(world["keys"]["krcert"])).status_code
        == 202
    )
    time.sleep(1.5)
    hub.replicas.check()
    assert not replica.usable and replica.reason.startswith("lagging"), replica.reason
    r = client.get(world["url"], headers=_headers(world["keys"]["cisa"]))  # the primary, holding the new objects
    assert [o["id"] for o in r.json["objects"]] == [o["id"] for o in objects]

    cluster.replica_sql("SELECT pg_wal_replay_resume()")
    cluster.wait_caught_up()
    hub.replicas.check()
    assert replica.usable, replica.reason


@pytest.mark.slow
def test_the_panel_shows_an_administrators_own_change_at_once(cluster: Cluster, replica_app) -> None:
    app = replica_app(max_replica_lag_seconds=60)
    hub = app.extensions["cti_hub"]
    small_world(hub, accounts=True)
    admin = logged_in(app)
    cluster.wait_caught_up()
    hub.replicas.check()
    cluster.replica_sql("SELECT pg_wal_replay_pause()")
    form = {"csrf_token": admin.token, "slug": "replayed", "name": "Seen", "members": "krcert", "countries": ""}
    assert admin.post("/admin/groups/new", data=form).status_code == 302
    hub.replicas.check()
    assert hub.replicas.replicas[0].usable  # behind the change, but within the lag allowed
    admin.get("/admin/groups/")  # the page the form led to shows its flash message, which names the group
    body = admin.get("/admin/audit?action=group.create").get_data(as_text=True)
    assert "replayed" in body  # the audit page read a server that holds the change: the primary
    # Another administrator, who changed nothing, may be shown the replica's slightly older view.
    other = logged_in(app)
    assert "replayed" not in other.get("/admin/audit?action=group.create").get_data(as_text=True)


@pytest.mark.slow
def test_a_feed_since_past_the_replica_is_served_by_the_primary(cluster: Cluster, replica_app) -> None:
    app = replica_app(max_replica_lag_seconds=60)
    hub = app.extensions["cti_hub"]
    world = small_world(hub)
    client = app.test_client()
    publisher = _headers(world["keys"]["krcert"])
    old, new = [f.indicator(n) for n in range(5)], [f.indicator(n) for n in range(5, 9)]
    assert client.post(world["url"], json={"objects": old}, headers=publisher).status_code == 202
    cluster.wait_caught_up()
    hub.replicas.check()
    cluster.replica_sql("SELECT pg_wal_replay_pause()")
    assert client.post(world["url"], json={"objects": new}, headers=publisher).status_code == 202
    hub.replicas.check()
    feed = f"/feeds/dprk/{world['shared']}/stix"
    reader = {"Authorization": f"Bearer {world['keys']['cisa']}"}

    stale = client.get(feed, headers=reader)  # no cursor: the replica, which holds the first envelope only
    assert stale.status_code == 200
    assert [o["id"] for o in stale.json["objects"]] == [o["id"] for o in old]
    since = stamp_plus_one(stale.headers["X-Feed-Cursor"])
    fresh = client.get(feed, query_string={"since": since}, headers=reader)
    assert [o["id"] for o in fresh.json["objects"]] == [o["id"] for o in new]
