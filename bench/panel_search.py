"""Time the admin panel's object search, object page and dashboard at a realistic size (default 100,000 versions).

Loads generated DPRK-style indicators (IPs, domains, URLs, hashes, relationships, later versions) through
the bulk-import path, as `bench/run.py` does, and the same number again with the search terms switched
off, to show what writing them costs at ingest. Then, logged in to the panel through Flask's test client
(the whole view: query, rendering), it times each search a number of times and prints the median and
the slowest, beside the raw-JSON ``LIKE`` scan the search replaced.

    python bench/panel_search.py                      # SQLite in a temporary directory
    python bench/panel_search.py --db postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import orjson
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import fresh_hub  # noqa: E402
from bench.run import bulk_load, setup_world  # noqa: E402
from hub import models as m  # noqa: E402
from hub.stix import values as stix_values  # noqa: E402
from hub.store import values  # noqa: E402
from tests.panel import add_admin, logged_in  # noqa: E402


def load_rate(db_url: str | None, tmp: str, n: int, *, terms: bool) -> float:
    """Objects/s of a bulk import of n versions into an empty hub, with or without writing search terms."""
    _, hub = fresh_hub(db_url, tmp, f"rate-{terms}.db", admin_mfa_required=False)
    world = setup_world(hub)
    if terms:
        return bulk_load(hub, world, n)
    with mock.patch.object(values, "term_rows", lambda session, rows, terms=(): []):
        return bulk_load(hub, world, n)


def samples(hub, n: int) -> dict[str, str]:
    """Search inputs taken from what was stored: an IP, a domain, a URL host, a hash prefix, a name word."""
    out: dict[str, str] = {}
    with hub.session(write=False) as s:
        stmt = select(m.ObjectVersion.raw).where(m.ObjectVersion.type == "indicator")
        for raw in s.scalars(stmt.order_by(m.ObjectVersion.pk).offset(n // 3).limit(2000)):
            obj = orjson.loads(raw)
            for path, value in stix_values.observables(obj):
                kind = path.split(":")[0]
                if kind in ("ipv4-addr", "domain-name", "url") and kind not in out:
                    out[kind] = value
                elif "hashes" in path and "hash" not in out:
                    out["hash"] = value[:12].lower()
    return out


def timed(client, url: str, repeat: int) -> tuple[float, float, int]:
    """Median and slowest milliseconds of GET url, and the rows on the page."""
    times, rows = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (url, r.status_code)
        rows = r.get_data(as_text=True).count("<tr data-object=")
    return statistics.median(times), max(times), rows


def raw_scan_ms(hub, needle: str, repeat: int) -> float:
    """Median milliseconds of the search the panel used before: a LIKE over every raw JSON, newest 51."""
    V = m.ObjectVersion
    stmt = select(V.pk).where(V.raw.contains(needle, autoescape=True)).order_by(V.date_added.desc()).limit(51)
    times = []
    for _ in range(repeat):
        with hub.session(write=False) as s:
            start = time.perf_counter()
            s.execute(stmt).all()
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir); schema reset")
    parser.add_argument("--size", type=int, default=100_000, help="versions to load")
    parser.add_argument("--repeat", type=int, default=20, help="times each request is timed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = load_rate(args.db, tmp, args.size, terms=False)
        app, hub = fresh_hub(args.db, tmp, "search.db", admin_mfa_required=False)
        world = setup_world(hub)
        with_terms = bulk_load(hub, world, args.size)
        with hub.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        with hub.session() as s:
            add_admin(s, "alice", "admin")
        with hub.session(write=False) as s:
            versions = s.scalar(select(func.count()).select_from(m.ObjectVersion))
            terms = s.scalar(select(func.count()).select_from(m.ObjectValue))
        print(f"engine {hub.engine.dialect.name}: {versions:,} versions, {terms:,} search terms")
        print(f"bulk import: {plain:,.0f} objects/s without search terms, {with_terms:,.0f} with them")
        client = logged_in(app)
        found = samples(hub, versions)
        oldest = hub_oldest_page(client)
        cases = [
            ("list, first page", "/admin/objects/"),
            ("list, a page 1,000 versions deep", oldest),
            ("exact IP", f"/admin/objects/?text={found['ipv4-addr']}&exact=1"),
            ("IP prefix (first two bytes)", "/admin/objects/?text=" + ".".join(found["ipv4-addr"].split(".")[:2])),
            ("domain and its subdomains", f"/admin/objects/?text={found['domain-name']}"),
            ("URL", f"/admin/objects/?text={found['url'][:30]}"),
            ("hash prefix (12 hex digits)", f"/admin/objects/?text={found['hash']}"),
            ("name word", "/admin/objects/?text=lazarus"),
            ("one letter (the broadest prefix)", "/admin/objects/?text=a"),
            ("no match", "/admin/objects/?text=zz-no-such-value"),
            ("name word and type and TLP", "/admin/objects/?text=lazarus&type=indicator&tlp=AMBER"),
            ("object page", f"/admin/objects/{first_id(hub)}"),
            ("dashboard", "/admin/"),
        ]
        print(f"{'request':<36} {'median ms':>10} {'slowest ms':>11} {'rows':>5}")
        for name, url in cases:
            median, slowest, rows = timed(client, url, args.repeat)
            print(f"{name:<36} {median:>10.1f} {slowest:>11.1f} {rows:>5}")
        print(f"{'raw JSON LIKE scan (before), an IP':<36} {raw_scan_ms(hub, found['ipv4-addr'], 5):>10.1f}")


def hub_oldest_page(client) -> str:
    """The URL of the objects list 20 pages (1,000 versions) in, reached by following 'Older'."""
    url = "/admin/objects/"
    for _ in range(20):
        body = client.get(url).get_data(as_text=True)
        url = body.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    return url


def first_id(hub) -> str:
    with hub.session(write=False) as s:
        stmt = select(m.ObjectVersion.stix_id).where(m.ObjectVersion.type == "indicator").limit(1)
        return s.scalars(stmt).one()


if __name__ == "__main__":
    main()
