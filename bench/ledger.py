"""Time `ledger who-received` against a delivery ledger of a million recorded responses.

Publishes 20,000 indicators, lets a partner pull them once over TAXII (so the ledger holds a real
row and the partner's saved view), then records 1,000,000 deliveries the way a fortnight of SIEM
polling does: mostly empty head polls and, one in twenty, a page of 20 consecutive objects at a
random place in the collection. It then answers "who received this object" for objects spread over
the collection and prints the median and the slowest time (the goal: under a second).

    python bench/ledger.py                       # SQLite in a temporary directory
    python bench/ledger.py --db postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from hub import ingest, ledger  # noqa: E402
from hub import models as m  # noqa: E402
from tests import factories as f  # noqa: E402
from tests.worlds import small_world  # noqa: E402

OBJECTS = 20_000
PAGE = 20
BATCH = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir); its schema is reset"
    )
    parser.add_argument("--deliveries", type=int, default=1_000_000, help="delivery rows to record")
    parser.add_argument("--lookups", type=int, default=50, help="objects to look up")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app, hub = fresh_hub(args.db, tmp, "ledger.db")
        world = small_world(hub)
        with hub.session(write=False) as s:
            krcert = hub.snapshot(s).by_slug["krcert"]
        for start in range(0, OBJECTS, 1000):
            ingest.ingest_envelope(hub, krcert, world["shared"], [f.indicator(i) for i in range(start, start + 1000)])
        client = f.Client(app.test_client(), world["keys"]["cisa"])
        params: dict = {"limit": "1000"}
        while True:  # one real pull: the ledger saves cisa's view of the collection
            body = client.get(world["url"], params).get_json()
            if not body.get("more"):
                break
            params = {"limit": "1000", "next": body["next"]}
        with hub.session(write=False) as s:
            real = s.scalars(select(m.Delivery).where(m.Delivery.count > 0).limit(1)).one()
            added = list(
                s.scalars(
                    select(m.ObjectVersion.date_added)
                    .where(m.ObjectVersion.type == "indicator")
                    .order_by(m.ObjectVersion.date_added)
                )
            )
            ids = list(
                s.scalars(
                    select(m.ObjectVersion.stix_id)
                    .where(m.ObjectVersion.type == "indicator")
                    .order_by(m.ObjectVersion.date_added)
                )
            )
        base = {
            "partner_id": real.partner_id,
            "partner_slug": real.partner_slug,
            "key_id": real.key_id,
            "endpoint": "objects",
            "collection_id": real.collection_id,
            "filters": "{}",
            "rules_version": real.rules_version,
        }
        rng = random.Random(5)
        started = time.perf_counter()
        for start in range(0, args.deliveries, BATCH):
            rows = []
            for n in range(start, min(start + BATCH, args.deliveries)):
                if n % 20:
                    rows.append({**base, "at_us": added[-1] + n, "first_added": None, "last_added": None, "count": 0})
                else:
                    first = rng.randrange(0, len(added) - PAGE)
                    rows.append(
                        {
                            **base,
                            "at_us": added[-1] + n,
                            "first_added": added[first],
                            "last_added": added[first + PAGE - 1],
                            "count": PAGE,
                        }
                    )
            with hub.session() as s:
                s.execute(insert(m.Delivery), rows)
        print(f"recorded {args.deliveries:,} deliveries in {time.perf_counter() - started:.0f} s", flush=True)
        if args.db:
            with hub.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        else:
            with hub.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
        times, found = [], []
        for i in range(args.lookups):
            stix_id = ids[(i * len(ids)) // args.lookups]
            t = time.perf_counter()
            with hub.session(write=False) as s:
                found.append(len(ledger.who_received(s, hub.snapshot(s), stix_id)))
            times.append(time.perf_counter() - t)
        engine = "PostgreSQL" if args.db else "SQLite"
        print(
            f"who-received on {engine}, {args.deliveries:,} deliveries, {args.lookups} objects: "
            f"median {statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms, "
            f"receipts per object {min(found)}-{max(found)} (goal: under 1 s)"
        )
        hub.engine.dispose()


if __name__ == "__main__":
    main()
