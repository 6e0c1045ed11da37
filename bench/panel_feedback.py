"""Time the admin panel's feedback views on a hub holding many sightings and opinions (default 200,000).

Publishes indicators through ingest, then stores feedback versions straight into the feedback collection
(version rows and ``feedback`` rows, as ingest writes them, without re-counting after each one): 90 %
sightings, 10 % false-positive opinions, from 24 reporting partners, added over the last 60 days so
about half fall in the dashboard's 30-day window. One indicator is "hot" (``--hot`` of the rows). Then,
logged in through Flask's test client (the whole view: query, rendering), it times each page and each
query a number of times and prints the median and the slowest.

    python bench/panel_feedback.py                      # SQLite in a temporary directory
    python bench/panel_feedback.py --db postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from hub import ingest, reference, stix  # noqa: E402
from hub import models as m  # noqa: E402
from hub.admin import dashboard, data_feedback  # noqa: E402
from hub.policy import TLP  # noqa: E402
from hub.store import clock, writes  # noqa: E402
from hub.store import feedback as store  # noqa: E402
from tests import factories as f  # noqa: E402
from tests.panel import add_admin, logged_in  # noqa: E402

DAY_US = 86_400_000_000
CHUNK = 5_000


def build(hub: Any, indicators: int) -> dict:
    """Partners, dprk/shared and dprk/feedback, and ``indicators`` indicators by four originators."""
    with hub.session() as s:
        f.hub_partner(s)
        pks = {}
        for n in range(28):
            slug = ("krcert", "cisa", "jpcert", "auscert")[n] if n < 4 else f"cert{n:02d}"
            pks[slug] = f.add_partner(s, slug, "KR", TLP.RED).id
        root = f.add_root(s, "dprk")
        shared = f.add_collection(s, root, "shared", allow_warninglisted=True)
        fb = f.add_collection(s, root, "feedback", default_tlp=TLP.AMBER, types=["sighting", "opinion", "note"])
        fb.is_feedback = True
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
        add_admin(s, "alice", "admin")
        shared_uuid, fb_pk = shared.uuid, fb.id
    originators = list(pks)[:4]
    targets: list[tuple[str, int]] = []
    for start in range(0, indicators, 1000):
        for slug in originators:
            batch = [f.indicator(10_000 * (1 + originators.index(slug)) + n) for n in range(start, start + 250)]
            result = ingest.ingest_envelope(hub, pks[slug], shared_uuid, batch)
            assert not result.failures, result.failures[:3]
            targets += [(o["id"], pks[slug]) for o in batch]
    return {"pks": pks, "feedback_pk": fb_pk, "targets": targets, "reporters": [pks[s] for s in list(pks)[4:]]}


def load_feedback(hub: Any, world: dict, n: int, hot_share: float) -> None:
    """Store ``n`` feedback versions in the feedback collection, as ingest would (rows and feedback entries)."""
    rng = random.Random(7)
    now = clock.now_us()
    hot = world["targets"][0]
    for start in range(0, n, CHUNK):
        rows, entries = [], []
        for i in range(start, min(start + CHUNK, n)):
            target, originator = hot if rng.random() < hot_share else rng.choice(world["targets"])
            reporter = rng.choice(world["reporters"])
            added = now - rng.randrange(60 * DAY_US)
            at = stix.format_timestamp(added // 1000 * 1000)[:-4] + "Z"
            kind = "sighting" if rng.random() < 0.9 else "false_positive"
            fid = f"{'sighting' if kind == 'sighting' else 'opinion'}--{uuid.uuid5(uuid.NAMESPACE_OID, f'fb{i}')}"
            count = rng.randint(1, 20) if kind == "sighting" else 0
            obj = {"type": fid.split("--")[0], "spec_version": "2.1", "id": fid, "created": at, "modified": at}
            rows.append(
                {
                    "collection_id": world["feedback_pk"],
                    "stix_id": fid,
                    "type": obj["type"],
                    "version": at,
                    "version_us": stix.parse_timestamp(at),
                    "spec_version": "2.1",
                    "originator_id": reporter,
                    "tlp": int(TLP.GREEN),
                    "restriction_set_id": None,
                    "unknown_markings": False,
                    "quarantined": False,
                    "raw": orjson.dumps(obj).decode(),
                }
            )
            entries.append(
                {
                    "collection_id": world["feedback_pk"],
                    "stix_id": fid,
                    "kind": kind,
                    "target_id": target,
                    "target_originator_id": originator,
                    "reporter_id": reporter,
                    "count": count,
                    "first_seen_us": added - DAY_US if kind == "sighting" else added,
                    "last_seen_us": added,
                    "revoked": False,
                    "shared": False,
                    "added_us": added,
                }
            )
        with hub.session() as s:
            writes.add_versions(s, rows)
            pks = store.version_pks(s, world["feedback_pk"], [r["date_added"] for r in rows])
            for row, entry in zip(rows, entries, strict=True):
                entry["version_pk"] = pks[row["date_added"]]
            store.save(s, entries)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir); schema reset")
    parser.add_argument("--feedback", type=int, default=200_000, help="feedback versions to store")
    parser.add_argument("--indicators", type=int, default=4_000, help="indicators they are about")
    parser.add_argument("--hot", type=float, default=0.05, help="share of the feedback about one indicator")
    parser.add_argument("--repeat", type=int, default=10, help="times each request is timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app, hub = fresh_hub(args.db, tmp, "feedback.db", admin_mfa_required=False)
        world = build(hub, args.indicators)
        started = time.perf_counter()
        load_feedback(hub, world, args.feedback, args.hot)
        loaded = time.perf_counter() - started
        with hub.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        with hub.session(write=False) as s:
            total = s.scalar(select(func.count()).select_from(m.Feedback))
            recent = s.scalar(
                select(func.count())
                .select_from(m.Feedback)
                .where(m.Feedback.added_us >= clock.now_us() - data_feedback.WINDOW_DAYS * DAY_US)
            )
            hot_rows = s.scalar(
                select(func.count()).select_from(m.Feedback).where(m.Feedback.target_id == world["targets"][0][0])
            )
        print(
            f"engine {hub.engine.dialect.name}: {total:,} feedback versions ({recent:,} in the last "
            f"{data_feedback.WINDOW_DAYS} days), {len(world['targets']):,} indicators, hot one {hot_rows:,}; "
            f"loaded in {loaded:.0f} s"
        )
        client = logged_in(app)
        hot, typical = world["targets"][0][0], world["targets"][len(world["targets"]) // 2][0]
        reporter = next(slug for slug, pk in world["pks"].items() if pk == world["reporters"][0])

        def get(url: str) -> Callable[[], Any]:
            def run() -> None:
                r = client.get(url)
                assert r.status_code == 200, (url, r.status_code)

            return run

        def query(fn: Callable[..., Any], *a: Any) -> Callable[[], Any]:
            def run() -> None:
                with hub.session(write=False) as s:
                    fn(s, hub.snapshot(s), *a)

            return run

        cases = [
            ("dashboard page (whole view)", get("/admin/")),
            ("  its other panels (query)", query(dashboard.dashboard)),
            ("  received per originator (query)", query(data_feedback.received_per_originator)),
            ("  top sighted indicators (query)", query(data_feedback.top_sighted)),
            ("object page, hot indicator", get(f"/admin/objects/{hot}")),
            ("  its feedback (query)", query(data_feedback.object_feedback, hot)),
            ("object page, typical indicator", get(f"/admin/objects/{typical}")),
            ("  its feedback (query)", query(data_feedback.object_feedback, typical)),
            ("partner sent back, page 1", get(f"/admin/partners/{reporter}/feedback")),
            ("partner sent back, page 10", get(f"/admin/partners/{reporter}/feedback?page=10")),
            ("  sent_by page 1 (query)", query(data_feedback.sent_by, world["reporters"][0], 1)),
        ]
        print(f"{'request':<40} {'median ms':>10} {'slowest ms':>11}")
        for name, fn in cases:
            median, slowest = timed(fn, args.repeat)
            print(f"{name:<40} {median:>10.1f} {slowest:>11.1f}")


if __name__ == "__main__":
    main()
