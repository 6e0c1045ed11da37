"""Time another partner's reads while one partner floods the hub with restriction sets.

One partner (krcert) publishes 250 sharing markings that all admit the reader, then indicators that
each carry a pair of them not used before, through the real ingest path, into a collection of its own:
every pair is a new restriction set. At each size (1, 1,000, 10,000 and 30,000 sets) it times, for
another partner (singcert) reading a second collection of 1,000 fixed indicators, which none of the
flood touches:

- the snapshot rebuild (``snapshots.load_snapshot`` and the reader's compiled filter);
- the first poll after the flood (it pays the rebuild) and the median of 20 polls after it
  (TAXII GET of the objects, ``limit=1000``, through the Flask test client);
- a STIX feed pull of the collection.

The quotas are raised for the run.

    python bench/restriction_sets.py                       # SQLite in a temporary directory
    python bench/restriction_sets.py --db postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import itertools
import logging
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from hub import ingest, reference  # noqa: E402
from hub import models as m  # noqa: E402
from hub.policy import TLP  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from hub.store import snapshots  # noqa: E402
from tests import factories as f  # noqa: E402

MARKINGS = 250  # 250 * 249 / 2 = 31,125 pairs: the flood
READ_OBJECTS = 1000
ENVELOPE = 1000
POLLS = 20


def marking_id(n: int) -> str:
    return f"marking-definition--{uuid.uuid5(uuid.NAMESPACE_OID, f'flood-{n}')}"


def build(hub: Hub) -> dict:
    """Two partners, a collection the reader polls (1,000 indicators) and one the flood goes into."""
    with hub.session() as s:
        f.hub_partner(s)
        f.add_partner(s, "krcert", "KR", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        root = f.add_root(s, "dprk")
        ids = {alias: f.add_collection(s, root, alias, max_tlp=TLP.AMBER).uuid for alias in ("shared", "flood")}
        reference.publish_reference(s)
        snap = hub.snapshot(s)
        krcert = snap.by_slug["krcert"]
    keys = {slug: f.key_for(hub, slug) for slug in ("krcert", "singcert")}
    markings = [f.sharing_marking(marking_id(n), countries=["KR", "SG"]) for n in range(MARKINGS)]
    ingest.ingest_envelope(hub, krcert, ids["flood"], markings)
    ingest.ingest_envelope(hub, krcert, ids["shared"], [f.indicator(n) for n in range(READ_OBJECTS)])
    return {"ids": ids, "keys": keys, "krcert": krcert}


def flood(hub: Hub, world: dict, pairs: itertools.islice, upto: int, done: int) -> int:
    """Publish indicators carrying new pairs of markings until ``upto`` restriction sets exist."""
    while done < upto:
        batch = []
        for _ in range(min(ENVELOPE, upto - done)):
            a, b = next(pairs)
            n = 1_000_000 + done + len(batch)
            batch.append(f.indicator(n, markings=[marking_id(a)] if a == b else [marking_id(a), marking_id(b)]))
        result = ingest.ingest_envelope(hub, world["krcert"], world["ids"]["flood"], batch)
        assert not result.failures, result.failures[:1]
        done += len(batch)
    return done


def pairs_of_markings() -> itertools.chain:
    """The first set holds one marking, the rest two: each a combination not used before."""
    return itertools.chain([(0, 0)], itertools.combinations(range(MARKINGS), 2))


def measure(app, hub: Hub, world: dict) -> dict:  # type: ignore[no-untyped-def]
    reader = f.Client(app.test_client(), world["keys"]["singcert"])
    url = f"/dprk/collections/{world['ids']['shared']}/objects/"
    with hub.session() as s:
        snapshots.bump_rules(s)  # what each new set did before: every process rebuilds its snapshot
    started = time.perf_counter()
    first = reader.get(url, {"limit": "1000"})
    first_ms = (time.perf_counter() - started) * 1000
    assert first.status_code == 200 and len(first.get_json()["objects"]) == READ_OBJECTS, first.get_data()[:300]
    polls = []
    for _ in range(POLLS):
        started = time.perf_counter()
        assert reader.get(url, {"limit": "1000"}).status_code == 200
        polls.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    feed = app.test_client().get(
        f"/feeds/dprk/{world['ids']['shared']}/stix", headers={"Authorization": f"Bearer {world['keys']['singcert']}"}
    )
    body = feed.get_data()
    feed_ms = (time.perf_counter() - started) * 1000
    assert feed.status_code == 200 and body.count(b'"indicator--') >= READ_OBJECTS, body[:300]
    with hub.session(write=False) as s:
        started = time.perf_counter()
        snap = snapshots.load_snapshot(s)
        collection = snap.collections[world["ids"]["shared"]]
        snap.read_filter(snap.by_slug["singcert"], collection)
        rebuild_ms = (time.perf_counter() - started) * 1000
        sets = s.scalar(select(func.count()).select_from(m.RestrictionSet))
    return {"sets": sets, "first": first_ms, "poll": statistics.median(polls), "feed": feed_ms, "rebuild": rebuild_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir); its schema is reset"
    )
    parser.add_argument("--sizes", default="1,1000,10000,30000", help="restriction-set counts to measure at")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    logging.getLogger("hub.access").disabled = True  # one line per request would drown the figures
    with tempfile.TemporaryDirectory() as tmp:
        app, hub = fresh_hub(
            args.db,
            tmp,
            "sets.db",
            max_sharing_markings_per_partner=MARKINGS,
            max_restriction_sets_per_partner=max(sizes),
        )
        world = build(hub)
        pairs, done, rows = pairs_of_markings(), 0, []
        for size in sizes:
            started = time.perf_counter()
            done = flood(hub, world, pairs, size, done)
            print(f"{done:,} restriction sets published in {time.perf_counter() - started:.1f} s", flush=True)
            rows.append(measure(app, hub, world))
        engine = "PostgreSQL" if args.db else "SQLite"
        print(f"\n{engine}: another partner's reads of 1,000 objects against the number of restriction sets")
        print(
            "| restriction sets | snapshot rebuild (ms) | first poll after a change (ms) | poll p50 (ms) | feed (ms) |"
        )
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['sets']:,} | {r['rebuild']:.1f} | {r['first']:.1f} | {r['poll']:.1f} | {r['feed']:.1f} |")
        hub.engine.dispose()


if __name__ == "__main__":
    main()
