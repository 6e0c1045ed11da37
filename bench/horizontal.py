"""Benchmark one hub process against two on one database: the horizontal web tier.

    python bench/horizontal.py --db postgresql://postgres@127.0.0.1:5432/bench [--size 100000]

Loads ``--size`` versions, then runs the same back-to-back load (``--clients`` threads for
``--seconds``: page pulls, head polls and 100-object publishes, as ``bench/run.py``'s load) against
one `cti-hub serve` process, then against two on other ports (each its own data directory, as two
hosts would have), the clients spread over them. Every process has ``--workers`` gunicorn workers and
the rate-limit counters in the Redis at ``--redis`` (as a horizontal deployment needs them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import create_database  # noqa: E402
from bench.run import _port, _wait_ready, bulk_load, load, setup_world  # noqa: E402
from hub import create_app, db  # noqa: E402
from tests import factories as f  # noqa: E402


def serve(env: dict, workdir: Path, workers: int) -> tuple[str, subprocess.Popen]:
    port = _port()
    workdir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", str(workers)],
        env={**env, "CTI_HUB_DATA_DIR": str(workdir)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base, proc)
    return base, proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a PostgreSQL URL (its public schema is replaced)")
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers per process")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    create_database(args.db)
    engine = db.make_engine(args.db)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"database_url": args.db, "secret_key": "bench-secret", "data_dir": tmp})
        hub = app.extensions["cti_hub"]
        db.upgrade(hub.engine)
        world = setup_world(hub)
        print(f"loading {args.size:,} versions ...", flush=True)
        bulk_load(hub, world, args.size)
        with hub.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        key, writer_key = f.key_for(hub, "singcert"), f.key_for(hub, "krcert")
        hub.engine.dispose()
        env = {
            **os.environ,
            "CTI_HUB_DATABASE_URL": args.db,
            "CTI_HUB_SECRET_KEY": "bench-secret",
            "CTI_HUB_RATE_LIMIT_PER_MINUTE": "1000000",
            "CTI_HUB_REDIS_URL": args.redis,
        }
        rows = []
        for processes in (1, 2):
            with ExitStack() as stack:
                bases = []
                for n in range(processes):
                    base, proc = serve(env, Path(tmp) / f"host-{processes}-{n}", args.workers)
                    stack.callback(proc.wait)
                    stack.callback(proc.terminate)
                    bases.append(base)
                print(f"{processes} process(es) x {args.workers} worker(s): {args.clients} clients ...", flush=True)
                got = load(bases, key, writer_key, world, args.clients, args.seconds)
                rows.append((processes, got))
    print(f"\n{args.size:,} versions, {args.clients} clients back to back for {args.seconds:g} s")
    print(f"{'processes':<10}{'requests/s':>12}{'page p50 ms':>13}{'page p99 ms':>13}{'errors':>8}")
    for processes, got in rows:
        print(f"{processes:<10}{got['requests/s']:>12,.0f}{got['p50']:>13,.1f}{got['p99']:>13,.1f}{got['errors']:>8}")


if __name__ == "__main__":
    main()
