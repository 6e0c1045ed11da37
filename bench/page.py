"""Time to serve one 1,000-object TAXII page inside the server process, and the part of it that builds the body.

Loads ``--size`` generated versions (the data and partners of ``bench/run.py``), then, as the partner
``singcert``, times ``--rounds`` GETs of the first 1,000-object page through Flask's test client: the
whole request in the process (authentication, the page query, the ledger, the body), without HTTP or a
socket. Then, on the rows of that page, it times the body alone: as the hub builds it, and as it would
cost if every stored object were parsed and serialised again. Each figure is given in wall-clock time
and in this process's CPU time, which other work on a shared host disturbs less.

    python bench/page.py                      # SQLite in a temporary directory
    python bench/page.py --db postgresql://postgres@127.0.0.1:5432/bench_page
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from bench.run import bulk_load, setup_world  # noqa: E402
from hub.store import reads  # noqa: E402
from hub.taxii import backend  # noqa: E402
from tests import factories as f  # noqa: E402

TAXII = "application/taxii+json;version=2.1"


def _times_ms(fn: Callable[[], object], rounds: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this process) milliseconds of each of ``rounds`` calls, sorted."""
    fn()
    wall, cpu = [], []
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    return sorted(wall), sorted(cpu)


def _report(name: str, times: tuple[list[float], list[float]]) -> None:
    wall, cpu = times
    print(
        f"{name:<46} wall median {statistics.median(wall):7.3f} ms  p90 {wall[int(len(wall) * 0.9) - 1]:7.3f} ms"
        f"   CPU median {statistics.median(cpu):7.3f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--size", type=int, default=4000, help="versions to load (the partner sees about 60%%)")
    parser.add_argument("--rounds", type=int, default=200, help="timed repetitions of each measurement")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{'PostgreSQL' if args.db else 'SQLite'}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        app, hub = fresh_hub(args.db, tmp, "page.db")
        logging.getLogger("hub.access").disabled = True  # one JSON line per request on stdout would drown the figures
        world = setup_world(hub)
        bulk_load(hub, world, args.size)
        with hub.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        key = f.key_for(hub, "singcert")
        url = f"/dprk/collections/{world['collection']}/objects/?limit=1000"
        client = app.test_client()
        headers = {"Accept": TAXII, "Authorization": f"Bearer {key}"}
        first = client.get(url, headers=headers)
        page = orjson.loads(first.data)
        assert first.status_code == 200 and len(page["objects"]) == 1000, (first.status_code, first.data[:200])
        print(f"page: {len(page['objects'])} objects, {len(first.data):,} bytes")
        _report("whole request in the process", _times_ms(lambda: client.get(url, headers=headers), args.rounds))
        with app.app_context():
            session = hub.read_sessions()
            snap = hub.snapshot(session)
            partner = snap.by_slug["singcert"]
            collection = snap.find_collection("dprk", world["collection"])
            assert collection is not None
            query = reads.VersionQuery(collection.pk, snap.read_filter(partner, collection), partner, limit=1000)
            rows, more = reads.page(session, query, ("raw", "date_added"))
            _report("page query", _times_ms(lambda: reads.page(session, query, ("raw", "date_added")), args.rounds))
            session.close()
            paging = {"more": more, "next": page["next"]}

            def served() -> bytes:
                body = app.json.dumps(backend._envelope(rows, paging))
                return body if isinstance(body, bytes) else body.encode()  # werkzeug encodes a str body

            def reparsed() -> bytes:
                return orjson.dumps({**paging, "objects": [orjson.loads(r.raw) for r in rows]})

            assert orjson.loads(served()) == orjson.loads(reparsed()) == page
            _report("body as served (envelope to response bytes)", _times_ms(served, args.rounds))
            _report("body with every object parsed and re-encoded", _times_ms(reparsed, args.rounds))
        hub.engine.dispose()


if __name__ == "__main__":
    main()
