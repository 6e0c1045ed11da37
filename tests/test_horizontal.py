"""Two hub processes (two hosts' worth: own ports, own data directories) on one database.

What a load balancer in front of them needs: a POST answered by one and its status read from the
other; ``next`` tokens issued by one continued at the other with every object delivered once; a
sharing change made anywhere taking effect on both at their next request; one rate-limit budget per
key across both when they share a Redis. (The feeds scheduler's lease across processes is in
tests/test_feeds_schedule.py.)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from hub import sharing
from hub.ratelimit import WINDOW_SECONDS
from tests import factories as f
from tests.live import ROOT, serve_command

pytestmark = pytest.mark.slow
DEMO = ROOT / "config" / "sharing.yaml"
REDIS = "redis://127.0.0.1:6379/0"
LIMIT = 15  # requests per key per minute: above what each key below needs, so only the last part meets it


@contextlib.contextmanager
def two_hubs(make_app, settings: dict, tmp_path: Path, **extra: object) -> Iterator[tuple[list[str], dict, dict]]:
    """The demo world served by two `cti-hub serve` processes; yield ([base A, base B], keys, collection ids)."""
    app = make_app()
    hub = app.extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(DEMO))
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "cisa", "singcert")}
    with hub.session() as s:
        ids = {c.alias: c.uuid for c in hub.snapshot(s).collections_of("dprk")}
    with contextlib.ExitStack() as stack:
        bases = []
        for host in ("a", "b"):
            (tmp_path / host).mkdir()
            served = contextlib.contextmanager(serve_command)({**settings, **extra}, tmp_path / host)
            bases.append(stack.enter_context(served))
        yield bases, keys, ids


def _get(base: str, path: str, key: str, params: dict | None = None) -> requests.Response:
    return requests.get(f"{base}{path}", params=params, headers=_auth(key), timeout=30)


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}", "Accept": f.TAXII}


def test_two_processes_answer_as_one_hub(make_app, settings, tmp_path):
    with two_hubs(make_app, settings, tmp_path, rate_limit_per_minute=LIMIT, redis_url=REDIS) as (bases, keys, ids):
        objects = f"/dprk/collections/{ids['community']}/objects/"
        posted = []
        for n, base in enumerate(bases):
            batch = [f.indicator(7000 + 100 * n + i) for i in range(25)]
            body = {"objects": batch}
            r = requests.post(
                f"{base}{objects}", json=body, headers={**_auth(keys["krcert"]), "Content-Type": f.TAXII}, timeout=30
            )
            assert r.status_code == 202, r.text
            # Its status, read from the other process.
            other = bases[1 - n]
            status = _get(other, f"/dprk/status/{r.json()['id']}/", keys["krcert"]).json()
            assert status["status"] == "complete" and status["success_count"] == 25, status
            posted += [o["id"] for o in batch]

        # A pull alternating between the two, each continuing the other's next token.
        seen: list[str] = []
        params: dict = {"limit": "7", "match[type]": "indicator"}
        for page in range(100):
            body = _get(bases[page % 2], objects, keys["cisa"], params).json()
            seen += [o["id"] for o in body.get("objects", [])]
            if not body.get("more"):
                break
            params = {**params, "next": body["next"]}
        assert sorted(seen) == sorted(posted) and len(seen) == len(set(seen))

        # A sharing change applied through the CLI takes effect on both at their next request.
        config = yaml.safe_load(DEMO.read_text())
        community = next(c for c in config["api_roots"][0]["collections"] if c["alias"] == "community")
        community["readers"] = ["partner:krcert"]
        changed = tmp_path / "sharing.yaml"
        changed.write_text(yaml.safe_dump(config, sort_keys=False))
        env = {
            **os.environ,
            "CTI_HUB_DATABASE_URL": settings["database_url"],
            "CTI_HUB_SECRET_KEY": settings["secret_key"],
        }
        applied = subprocess.run(
            [sys.executable, "-m", "hub.cli", "sharing", "apply", str(changed)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert applied.returncode == 0, applied.stderr
        for base in bases:
            assert _get(base, objects, keys["cisa"]).status_code in (403, 404)
            assert _get(base, objects, keys["krcert"]).status_code == 200

        # One rate-limit budget per key across both processes (they share a Redis).
        left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
        if left < 5:  # the allowed requests and the refused ones must fall in one window
            time.sleep(left + 0.05)
        collections = "/dprk/collections/"
        codes = [_get(bases[n % 2], collections, keys["singcert"]).status_code for n in range(LIMIT)]
        assert codes == [200] * LIMIT
        for base in bases:
            refused = _get(base, collections, keys["singcert"])
            assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
