"""Cut the hub's PostgreSQL connections while partners publish and a SIEM pages: nothing acknowledged is lost.

PostgreSQL terminates every backend of the hub's database several times (as a failover, a restart
of the pooler or an administrator's ``pg_terminate_backend`` would). The server keeps running: it
must answer requests caught by the drop with a clean TAXII error, never acknowledge what it did not
commit, and reconnect by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select, text

from hub import db
from hub import models as m
from tests import factories as f
from tests.live import ROOT, free_port, wait_ready
from tests.worlds import small_world

pytestmark = pytest.mark.slow

ENVELOPE = 100
PUBLISHERS = 3
TARGET = int(os.environ.get("HUB_TEST_PG_DROP_OBJECTS", "20000"))  # objects sent in all
DROPS = 5
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)
RETRYABLE = {503}  # a lost database connection: "retry shortly", with Retry-After


@pytest.fixture
def server(make_app, settings, tmp_path, db_engine_name):
    """The sharing world and `cti-hub serve --workers 2` on it; yield (base url, world, log path)."""
    if db_engine_name != "postgres":
        pytest.skip("connection drops are a PostgreSQL matter: SQLite has no server connection to lose")
    hub = make_app().extensions["cti_hub"]
    world = small_world(hub)
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
        "CTI_HUB_RATE_LIMIT_PER_MINUTE": "0",
    }
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            yield base, world, log_path, proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


class Traffic:
    """What the clients sent and got back, shared by the publisher and poller threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acked: dict[str, list[str]] = {}  # status id -> object ids of the envelope
        self.acked_at: list[float] = []
        self.sent: list[list[str]] = []
        self.errors: list[tuple[int, str, str]] = []  # (status, content type, body) of every non-success
        self.retry_after: list[str | None] = []
        self.exceptions: list[str] = []
        self.seen: list[str] = []
        self.next_first = 0

    def claim(self) -> int | None:
        """Hand out the next envelope's first object number, or None once TARGET objects went out."""
        with self.lock:
            if self.next_first >= TARGET:
                return None
            first, self.next_first = self.next_first, self.next_first + ENVELOPE
            return first

    def error(self, r: requests.Response) -> None:
        with self.lock:
            self.errors.append((r.status_code, r.headers.get("Content-Type", ""), r.text[:500]))
            self.retry_after.append(r.headers.get("Retry-After"))


def publish(base: str, url: str, key: str, traffic: Traffic) -> None:
    headers = {"Authorization": f"Bearer {key}", "Accept": f.TAXII, "Content-Type": f.TAXII}
    while (first := traffic.claim()) is not None:
        objects = [f.indicator(i) for i in range(first, first + ENVELOPE)]
        ids = [o["id"] for o in objects]
        traffic.sent.append(ids)
        try:
            r = requests.post(base + url, json={"objects": objects}, headers=headers, timeout=120)
        except requests.RequestException as exc:
            traffic.exceptions.append(repr(exc))
            continue
        if r.status_code == 202:
            traffic.acked[r.json()["id"]] = ids
            traffic.acked_at.append(time.monotonic())
        else:
            traffic.error(r)


def fetch(base: str, url: str, headers: dict, params: dict, traffic: Traffic) -> requests.Response:
    """GET one page, asking again (after noting the failure) until it is served."""
    while True:
        try:
            r = requests.get(base + url, params=params, headers=headers, timeout=120)
        except requests.RequestException as exc:
            traffic.exceptions.append(repr(exc))
        else:
            if r.status_code == 200:
                return r
            traffic.error(r)
        time.sleep(0.2)


def poll(
    base: str, url: str, key: str, traffic: Traffic, after: str | None, stop: threading.Event | None
) -> str | None:
    """Page with added_after/next until caught up (or stopped); return the last X-TAXII-Date-Added-Last."""
    headers = {"Authorization": f"Bearer {key}", "Accept": f.TAXII}
    params: dict = {"limit": "500", **({"added_after": after} if after else {})}
    while True:
        r = fetch(base, url, headers, params, traffic)
        objects = r.json().get("objects", [])
        traffic.seen.extend(o["id"] for o in objects)
        after = r.headers["X-TAXII-Date-Added-Last"] if objects else after
        if r.json().get("more"):
            params = {"limit": "500", "next": r.json()["next"]}
        elif stop is None or stop.is_set():
            return after
        else:
            params = {"limit": "500", **({"added_after": after} if after else {})}
            time.sleep(0.05)


def drop_connections(database_url: str, traffic: Traffic, stop: threading.Event, drops: list[tuple]) -> None:
    """Terminate every other backend of the hub's database DROPS times, spread over the publication."""
    engine = db.make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    try:
        for n in range(DROPS):
            threshold = TARGET * (n + 1) // (DROPS + 1)
            while traffic.next_first < threshold and not stop.is_set():
                time.sleep(0.05)
            with engine.connect() as conn:
                drops.append((conn.execute(text(TERMINATE)).scalar_one(), time.monotonic()))
    finally:
        engine.dispose()


def test_terminated_connections_lose_nothing_acknowledged(server, settings, make_app):
    base, world, log_path, proc = server
    traffic, stop, drops = Traffic(), threading.Event(), []
    last: list[str | None] = [None]
    publishers = [
        threading.Thread(target=publish, args=(base, world["url"], world["keys"]["krcert"], traffic))
        for _ in range(PUBLISHERS)
    ]
    poller = threading.Thread(
        target=lambda: last.__setitem__(0, poll(base, world["url"], world["keys"]["cisa"], traffic, None, stop))
    )
    dropper = threading.Thread(target=drop_connections, args=(settings["database_url"], traffic, stop, drops))
    for t in (*publishers, poller, dropper):
        t.start()
    for t in publishers:
        t.join(timeout=900)
    dropper.join(timeout=60)
    stop.set()
    poller.join(timeout=300)
    assert not any(t.is_alive() for t in (*publishers, poller, dropper))

    # The drops hit live connections, and the same server process carried on (no restart).
    assert len(drops) == DROPS and all(killed >= 1 for killed, _ in drops), drops
    assert proc.poll() is None
    assert not traffic.exceptions, traffic.exceptions[:3]
    # Requests caught by a drop got a clean, retryable TAXII error, never an HTML page or a hang.
    assert traffic.errors, "no request was in flight at any drop"
    for status, content_type, body in traffic.errors:
        assert status in RETRYABLE, (status, body)
        assert content_type.startswith("application/taxii+json"), (status, content_type, body)
        assert '"http_status"' in body and "Traceback" not in body
    assert all(value == "1" for value in traffic.retry_after)
    # It recovered: most envelopes went through, including after the last drop.
    assert len(traffic.acked) >= len(traffic.sent) // 2
    assert max(traffic.acked_at) > drops[-1][1], "nothing was acknowledged after the last drop"

    # Resume from the last X-TAXII-Date-Added-Last the poller got, on the same server: each object once.
    poll(base, world["url"], world["keys"]["cisa"], traffic, last[0], None)
    headers = {"Authorization": f"Bearer {world['keys']['krcert']}", "Accept": f.TAXII}
    statuses = {sid: requests.get(f"{base}/dprk/status/{sid}/", headers=headers, timeout=60) for sid in traffic.acked}

    hub = make_app().extensions["cti_hub"]
    with hub.session(write=False) as s:
        stored = Counter(
            s.scalars(
                select(m.ObjectVersion.stix_id).join(m.Collection).where(m.Collection.uuid == world["shared"])
            ).all()
        )
    assert stored and all(count == 1 for count in stored.values())
    for sid, ids in traffic.acked.items():
        assert all(i in stored for i in ids), "an acknowledged object is missing"
        status = statuses[sid]
        assert status.status_code == 200, status.text
        assert status.json()["success_count"] == ENVELOPE
        assert sorted(s["id"] for s in status.json()["successes"]) == sorted(ids)
    for ids in traffic.sent:  # no half-stored envelope: all of it or none of it
        assert len({i in stored for i in ids}) == 1
    assert sorted(traffic.seen) == sorted(stored) and len(traffic.seen) == len(set(traffic.seen))
