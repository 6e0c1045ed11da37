"""Compare full pulls served by two source trees from one database, alternating, on a host shared with other work.

On a busy host a full pull swings by a factor of two or more from one run to the next, far more than
most changes move it. This loads one collection (the data and partners of ``bench/run.py``), starts
``cti-hub serve`` (one worker) from this tree and from ``--base`` (another checkout, e.g.
``git archive main | tar -x -C /tmp/main``) on the same database, and pulls the whole collection
from each in turn (``--rounds`` pairs, the order swapped every round), so both see the same load.

    python bench/compare.py --base /tmp/main --size 100000 [--db postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from bench.run import TAXII, _port, _wait_ready, bulk_load, setup_world  # noqa: E402
from tests import factories as f  # noqa: E402


def pull(http: requests.Session, url: str) -> tuple[float, float]:
    """One full pull with ``limit=1000``: (objects/s, median page ms)."""
    params: dict = {"limit": 1000}
    total, pages, start = 0, [], time.perf_counter()
    while True:
        t = time.perf_counter()
        body = orjson.loads(http.get(url, params=params).content)
        pages.append((time.perf_counter() - t) * 1000)
        total += len(body.get("objects", []))
        if not body.get("more"):
            return total / (time.perf_counter() - start), statistics.median(pages)
        params = {"limit": 1000, "next": body["next"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the other source tree to serve")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--size", type=int, default=100_000, help="versions to load (the reader sees about 60%%)")
    parser.add_argument("--rounds", type=int, default=6, help="pulls from each tree")
    args = parser.parse_args()
    trees = {"base": Path(args.base).resolve(), "this": ROOT}
    if not (trees["base"] / "hub" / "cli").is_dir():
        raise SystemExit(f"--base: {args.base} is not a cti-hub source tree (no hub/cli)")
    with tempfile.TemporaryDirectory() as tmp:
        app, hub = fresh_hub(args.db, tmp, "compare.db")
        world = setup_world(hub)
        bulk_load(hub, world, args.size)
        with hub.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        key = f.key_for(hub, "singcert")
        hub.engine.dispose()
        env = {
            **os.environ,
            "CTI_HUB_DATABASE_URL": args.db or f"sqlite:///{tmp}/compare.db",
            "CTI_HUB_SECRET_KEY": "bench-secret",
            "CTI_HUB_RATE_LIMIT_PER_MINUTE": "0",
            "CTI_HUB_DATA_DIR": tmp,
        }
        http = requests.Session()
        http.headers.update({"Accept": TAXII, "Authorization": f"Bearer {key}"})
        servers: dict[str, tuple[subprocess.Popen, str]] = {}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        try:
            for name, tree in trees.items():
                port = _port()
                # cwd first on sys.path: each server imports the hub of its own tree.
                proc = subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "1"],
                    env=env,
                    cwd=tree,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                servers[name] = (proc, f"http://127.0.0.1:{port}/dprk/collections/{world['collection']}/objects/")
                _wait_ready(f"http://127.0.0.1:{port}", proc)
                for _ in range(8):
                    http.get(servers[name][1], params={"limit": 10})
            for i in range(args.rounds):
                for name in ("base", "this") if i % 2 == 0 else ("this", "base"):
                    rate, page_ms = pull(http, servers[name][1])
                    results[name].append((rate, page_ms))
                    print(
                        f"round {i} {name}: {rate:,.0f} objects/s, page median {page_ms:.1f} ms, "
                        f"load average {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()
    for name, figures in results.items():
        rate = statistics.median(r for r, _ in figures)
        page = statistics.median(p for _, p in figures)
        print(f"{name} ({trees[name]}): pull median {rate:,.0f} objects/s, page median {page:.1f} ms")


if __name__ == "__main__":
    main()
