"""SIGKILL the real server while partners publish and a SIEM pages: nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from hub import models as m
from tests import factories as f
from tests.live import ROOT, free_port, wait_ready
from tests.worlds import small_world

pytestmark = pytest.mark.slow
ENVELOPE = 100


def start_server(settings: dict, tmp_path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def publisher(base: str, url: str, key: str, first: int, stop: threading.Event, acked: dict, sent: list) -> None:
    n = first
    headers = {"Authorization": f"Bearer {key}", "Accept": f.TAXII, "Content-Type": f.TAXII}
    while not stop.is_set():
        ids = [f.indicator(i)["id"] for i in range(n, n + ENVELOPE)]
        sent.append(ids)
        try:
            r = requests.post(
                base + url,
                json={"objects": [f.indicator(i) for i in range(n, n + ENVELOPE)]},
                headers=headers,
                timeout=30,
            )
        except requests.RequestException:
            return
        if r.status_code == 202:
            acked[r.json()["id"]] = ids
        n += ENVELOPE


def poll(base: str, url: str, key: str, after: str | None, seen: list, stop: threading.Event | None) -> str | None:
    """Page with added_after/next until caught up (or stopped); return the last X-TAXII-Date-Added-Last."""
    headers = {"Authorization": f"Bearer {key}", "Accept": f.TAXII}
    params: dict = {"limit": "200", **({"added_after": after} if after else {})}
    while True:
        try:
            r = requests.get(base + url, params=params, headers=headers, timeout=30)
        except requests.RequestException:
            return after
        if r.status_code != 200:
            return after
        body = r.json()
        seen.extend(o["id"] for o in body.get("objects", []))
        if body.get("objects"):
            after = r.headers["X-TAXII-Date-Added-Last"]
        if body.get("more"):
            params = {"limit": "200", "next": body["next"]}
            continue
        if stop is None or stop.is_set():
            return after
        params = {"limit": "200", "added_after": after} if after else {"limit": "200"}
        time.sleep(0.05)


def test_sigkill_during_publish_and_poll_loses_nothing_acknowledged(make_app, settings, tmp_path):
    app = make_app()
    hub = app.extensions["cti_hub"]
    world = small_world(hub)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(settings, tmp_path, port)
    stop, acked, sent, seen = threading.Event(), {}, [], []
    last: list[str | None] = [None]
    try:
        threads = [
            threading.Thread(
                target=publisher, args=(base, world["url"], world["keys"]["krcert"], k * 1_000_000, stop, acked, sent)
            )
            for k in range(3)
        ]
        poller = threading.Thread(
            target=lambda: last.__setitem__(0, poll(base, world["url"], world["keys"]["cisa"], None, seen, stop))
        )
        for t in (*threads, poller):
            t.start()
        deadline = time.time() + 60
        while len(acked) < 8 and time.time() < deadline:
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
        stop.set()
        for t in (*threads, poller):
            t.join(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)
        proc.stderr.close()
    assert len(acked) >= 8 and len(sent) > len(acked)  # some envelopes were in flight

    proc = start_server(settings, tmp_path, port)
    try:
        # Resume from the last X-TAXII-Date-Added-Last the poller got: every object exactly once.
        poll(base, world["url"], world["keys"]["cisa"], last[0], seen, None)
        statuses = {
            sid: requests.get(
                f"{base}/dprk/status/{sid}/",
                timeout=30,
                headers={"Authorization": f"Bearer {world['keys']['krcert']}", "Accept": f.TAXII},
            )
            for sid in acked
        }
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)
        proc.stderr.close()

    with hub.session(write=False) as s:
        stored = Counter(
            s.scalars(
                select(m.ObjectVersion.stix_id).join(m.Collection).where(m.Collection.uuid == world["shared"])
            ).all()
        )
    assert all(count == 1 for count in stored.values())
    for sid, ids in acked.items():
        assert all(i in stored for i in ids), "an acknowledged object is missing"
        assert statuses[sid].status_code == 200 and statuses[sid].json()["success_count"] == ENVELOPE
    for ids in sent:  # no partial envelope: all of it or none of it
        assert len({i in stored for i in ids}) == 1
    assert sorted(seen) == sorted(stored) and len(seen) == len(set(seen))
