"""Benchmark the hub through real HTTP under gunicorn, with the sharing rules enforced.

Generates deterministic DPRK-style data (hub.demo.data), loads it through the same
ingest path as TAXII POST, serves it with `cti-hub serve`, and measures each
workload of the performance goals with a real HTTP client as a partner that sees
about half of the collection. Prints one table with the goal beside each figure.

    python bench/run.py --quick                 # 10,000 versions, SQLite, 2 workers
    python bench/run.py --sizes 10000,1000000   # the goals' sizes, with 1 and with 2 workers
    python bench/run.py --db postgresql://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import requests
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import create_database  # noqa: E402
from feeds.base import Item, resolve_target  # noqa: E402
from feeds.stix_bundle import StixBundle  # noqa: E402
from hub import create_app, db, models, reference  # noqa: E402
from hub.demo import data as demo_data  # noqa: E402
from hub.ids import HUB_NAMESPACE  # noqa: E402
from hub.policy import TLP  # noqa: E402
from hub.runtime import Hub  # noqa: E402
from tests import factories as f  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
# workload: (goal as printed, test of a measured figure)
GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "pull": (">= 50,000 obj/s", lambda v: v >= 50_000),
    "last/first page": ("<= 1.5x", lambda v: v <= 1.5),
    "head poll p50": ("<= 5 ms", lambda v: v <= 5),
    "head poll p99": ("<= 25 ms", lambda v: v <= 25),
    "object GET p50": ("<= 5 ms", lambda v: v <= 5),
    "POST 1,000/envelope": (">= 5,000 obj/s", lambda v: v >= 5_000),
    "bulk import": (">= 20,000 obj/s", lambda v: v >= 20_000),
    "worker RSS max": ("< 300 MB", lambda v: v < 300),
    "load errors": ("0", lambda v: v == 0),
    "load page p99": ("<= 250 ms", lambda v: v <= 250),
}
# Figures that depend on the number of gunicorn workers; the others are measured once per size.
PER_WORKERS = (
    "pull",
    "last/first page",
    "first page ms",
    "last page ms",
    "pull RSS max",
    "head poll p50",
    "head poll p99",
    "object GET p50",
    "POST 1,000/envelope",
    "worker RSS max",
)
LOAD_CHUNK = 5000
# The paced load: each of the 50 clients sends one request per LOAD_INTERVAL seconds, 60 times the rate
# of a SIEM that polls every minute.
LOAD_INTERVAL = 1.0


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_world(hub: Hub) -> dict:
    """Two publishers; the reader `singcert` (clearance AMBER) sees roughly half of the collection."""
    with hub.session() as s:
        f.hub_partner(s)
        kr = f.add_partner(s, "krcert", "KR", TLP.RED)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_group(s, "rokus", [kr, cisa])
        root = f.add_root(s, "dprk", max_content_length=64 * 1024 * 1024)
        f.add_collection(s, root, "intel", max_tlp=TLP.RED, default_tlp=TLP.GREEN)
        # The timed POSTs go here, so that every worker count pulls the same collection.
        f.add_collection(s, root, "inbox", max_tlp=TLP.RED, default_tlp=TLP.GREEN)
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[], reference=True)
        reference.publish_reference(s)
    return existing_world(hub)


def generate(n: int, world: dict, seed: int, slug: str) -> Iterator[dict]:
    """Yield n generated versions one at a time (a million never sit in memory together)."""
    pub = demo_data.Publisher(slug, f"identity--{f.uuid.uuid5(HUB_NAMESPACE, slug)}")
    mix = {TLP.CLEAR: 0.1, TLP.GREEN: 0.4, TLP.AMBER: 0.2, TLP.AMBER_STRICT: 0.25, TLP.RED: 0.05}
    return demo_data.indicators(
        n, publishers=[pub], seed=seed, tlp_mix=mix, sharing_markings=[world["rokus_marking"]], sharing_ratio=0.1
    )


def stream(n: int, world: dict, seed: int, slug: str) -> list[dict]:
    return list(generate(n, world, seed, slug))


def bulk_load(hub: Hub, world: dict, n: int) -> float:
    """Load n versions as `cti-hub feeds import stix` ingests a bundle; return objects/s.

    The objects are generated as they are consumed and handed over in chunks, so memory stays flat
    at any size; the import pipeline validates the next chunk on the second core while this one is
    stored. Prints progress every 10% (and at least every 100,000 objects).
    """
    slugs = list(world["partners"])
    per = n // len(slugs)
    every = min(100_000, max(LOAD_CHUNK, n // 10))
    start, done, shown = time.perf_counter(), 0, 0

    def progress(count: int) -> None:
        nonlocal done, shown
        done += count
        if done - shown >= every or done == per * len(slugs):
            shown = done
            rate = done / (time.perf_counter() - start)
            print(
                f"  loaded {done:,} / {per * len(slugs):,} versions ({rate:,.0f}/s, "
                f"loader RSS {_rss_kb(os.getpid()) / 1024:,.0f} MB)",
                flush=True,
            )

    for i, slug in enumerate(slugs):
        target = resolve_target(hub, slug, "intel", "dprk")
        items = (Item(obj) for obj in generate(per, world, seed=100 + i, slug=slug))
        StixBundle(hub, target, source_label="bench").ingest(items, progress)
    return done / (time.perf_counter() - start)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


class RssSampler(threading.Thread):
    """Sample the resident memory of the gunicorn workers (children of the server process)."""

    def __init__(self, server_pid: int) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.peak_kb, self.done = server_pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for pid in _children(self.server_pid):
                self.peak_kb = max(self.peak_kb, _rss_kb(pid))
            time.sleep(0.05)


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            out += [int(x) for x in children.read_text().split()]
    return out + [c for child in out for c in _children(child)]


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def load(
    base: str | list[str], key: str, writer_key: str, world: dict, clients: int, seconds: float, interval: float = 0.0
) -> dict:
    """``clients`` threads for ``seconds``: page pulls, head polls and publishes; count errors, time pages.

    One client in five publishes envelopes of 100; the others alternate between pulling 1,000-object
    pages and head polls. With ``interval``, each client starts one request per interval (at a random
    phase, never two at once): a paced load, as partners' SIEMs and publishers run on schedules. With
    ``interval`` 0 every client sends its next request as soon as the last one is answered: the
    server is saturated and page latency is the length of the queue, not the time to serve a page.
    With several ``base`` URLs (hub processes behind one database) client ``i`` talks to ``base[i % n]``.
    """
    bases = [base] if isinstance(base, str) else base
    path = f"/dprk/collections/{world['collection']}/objects/"
    begin = time.perf_counter()
    stop = begin + seconds
    pages: list[float] = []
    errors: Counter[str] = Counter()
    sent = [0]
    lock = threading.Lock()

    def client(i: int) -> None:
        url = bases[i % len(bases)] + path
        http = requests.Session()
        publisher = i % 5 == 0
        http.headers.update(
            {"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {writer_key if publisher else key}"}
        )
        extra = stream(2000, world, seed=50_000 + i + int(interval * 1000), slug="krcert") if publisher else []
        k = 0
        due = begin + (i * 0.618034 % 1.0) * interval  # spread the clients' phases over one interval
        while True:
            if interval:
                time.sleep(max(0.0, due - time.perf_counter()))
                due = max(due + interval, time.perf_counter())
            t = time.perf_counter()
            if t >= stop:
                break
            try:
                if publisher:
                    r = http.post(url, data=orjson.dumps({"objects": extra[k : k + 100]}), timeout=30)
                    k = (k + 100) % len(extra)
                elif i % 2:
                    r = http.get(url, params={"limit": 1000}, timeout=30)
                else:
                    r = http.get(url, params={"added_after": "2099-01-01T00:00:00Z"}, timeout=30)
                error = "" if r.status_code in (200, 202) else f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                error = type(exc).__name__
            with lock:
                sent[0] += 1
                if error:
                    errors[error] += 1
                elif not publisher:
                    pages.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    pages.sort()
    if errors:
        print(f"  load errors: {dict(errors)}", flush=True)
    return {
        "errors": sum(errors.values()),
        "requests/s": sent[0] / (time.perf_counter() - begin),
        "p50": statistics.median(pages) if pages else float("nan"),
        "p99": pages[int(len(pages) * 0.99) - 1] if pages else float("nan"),
    }


def measure(base: str, key: str, writer_key: str, world: dict, n: int, sampler: RssSampler, seed: int) -> dict:
    http = requests.Session()
    http.headers.update({"Accept": TAXII, "Authorization": f"Bearer {key}"})
    url = f"{base}/dprk/collections/{world['collection']}/objects/"
    out: dict = {}
    for _ in range(8):  # warm every worker: snapshot loaded, statements compiled
        http.get(url, params={"limit": 10})
    pages, total, t0 = [], 0, time.perf_counter()
    params: dict = {"limit": 1000}
    every = max(50, n // 10_000)  # print progress on long pulls
    while True:
        t = time.perf_counter()
        r = http.get(url, params=params)
        body = orjson.loads(r.content)  # parse as fast as a serious client would; this measures the server
        pages.append(time.perf_counter() - t)
        total += len(body.get("objects", []))
        if not body.get("more"):
            break
        params = {"limit": 1000, "next": body["next"]}
        if len(pages) % every == 0:
            print(
                f"  pulled {total:,} objects, page {len(pages)}: {pages[-1] * 1000:.1f} ms, "
                f"worker RSS max {sampler.peak_kb / 1024:,.0f} MB",
                flush=True,
            )
    out["pull"] = total / (time.perf_counter() - t0)
    out["visible"] = total
    out["pull RSS max"] = sampler.peak_kb / 1024
    # The last page is often short: compare the last full one with the first.
    last = pages[-2] if len(pages) > 2 else pages[-1]
    out["first page ms"], out["last page ms"] = pages[0] * 1000, last * 1000
    out["last/first page"] = last / pages[0] if len(pages) > 2 else 1.0
    last = r.headers["X-TAXII-Date-Added-Last"]
    polls = sorted(timed(lambda: http.get(url, params={"added_after": last})) for _ in range(300))
    out["head poll p50"], out["head poll p99"] = statistics.median(polls), polls[int(len(polls) * 0.99) - 1]
    ids = [o["id"] for o in http.get(url, params={"limit": 200}).json()["objects"]]
    gets = sorted(timed(lambda i=i: http.get(f"{url}{i}/")) for i in ids)
    out["object GET p50"] = statistics.median(gets)
    writer = requests.Session()
    writer.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {writer_key}"})
    extra = stream(5000, world, seed=seed, slug="krcert")
    inbox = f"{base}/dprk/collections/{world['inbox']}/objects/"
    posted, t0 = 0, time.perf_counter()
    for k in range(0, len(extra), 1000):
        r = writer.post(inbox, data=orjson.dumps({"objects": extra[k : k + 1000]}))
        posted += r.json()["success_count"]
    out["POST 1,000/envelope"] = posted / (time.perf_counter() - t0)
    return out


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait for the server to answer /readyz; stop the benchmark if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} (set BENCH_SERVER_LOG=FILE to see why)")
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server did not become ready in {timeout:.0f} s")


def loaded_versions(db_url: str) -> int:
    """How many versions the bench collection of an earlier run holds (0 if there is none)."""
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM object_versions v JOIN collections c ON c.id = v.collection_id "
                "WHERE c.alias = 'intel'"
            )
            return int(conn.exec_driver_sql(query).scalar() or 0)
    except Exception:  # noqa: BLE001 - no schema yet: nothing to reuse
        return 0
    finally:
        engine.dispose()


def existing_world(hub: Hub) -> dict:
    """The world ``setup_world`` made in an earlier run, read back from the database."""
    with hub.session() as s:
        snap = hub.snapshot(s)
        colls = {c.alias: c.uuid for c in s.scalars(select(models.Collection))}
        partners = {p: snap.by_slug[p] for p in ("krcert", "cisa")}
    marking = f"marking-definition--{f.uuid.uuid5(HUB_NAMESPACE, 'group:rokus')}"
    return {"collection": colls["intel"], "inbox": colls["inbox"], "partners": partners, "rokus_marking": marking}


def run_size(
    n: int, db_url: str | None, workdir: Path, clients: int, seconds: float, workers: list[int], reuse: bool = False
) -> dict:
    """Load n versions, then measure with each number of gunicorn workers; the load runs with the last.

    With ``reuse``, a PostgreSQL database that an earlier run loaded with at least n versions is measured
    as it is (no bulk import figure): ten million versions take longer to load than to measure.
    """
    settings = {"data_dir": str(workdir), "secret_key": "bench-secret"}
    loaded = loaded_versions(db_url) if db_url and reuse else 0
    if db_url:
        if loaded < n:
            create_database(db_url)
            engine = db.make_engine(db_url)
            with engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        settings["database_url"] = db_url
    else:
        settings["database_url"] = f"sqlite:///{workdir}/hub-{n}.db"
    app = create_app(settings)
    hub = app.extensions["cti_hub"]
    db.upgrade(hub.engine)
    result: dict = {}
    seed_base = 0
    if loaded >= n:
        print(f"size {n:,}: reusing the {loaded:,} versions loaded earlier", flush=True)
        world = existing_world(hub)
        # New seeds for the timed POSTs, so they publish new versions, not an earlier run's again.
        seed_base = int(time.time()) % 1_000_000 * 10
    else:
        world = setup_world(hub)
        print(f"size {n:,}: loading ...", flush=True)
        result["bulk import"] = bulk_load(hub, world, n)
        with hub.engine.begin() as conn:  # fresh planner statistics, as autovacuum would gather soon after a load
            conn.exec_driver_sql("ANALYZE")
    key, writer_key = f.key_for(hub, "singcert"), f.key_for(hub, "krcert")
    hub.engine.dispose()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": "bench-secret",
        "CTI_HUB_RATE_LIMIT_PER_MINUTE": "0",
        "CTI_HUB_DATA_DIR": str(workdir),
    }
    for count in workers:
        print(f"size {n:,}: measuring with {count} worker(s) ...", flush=True)
        port = _port()
        log = open(os.environ["BENCH_SERVER_LOG"], "ab") if os.environ.get("BENCH_SERVER_LOG") else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", str(count)],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base, proc)
            sampler = RssSampler(proc.pid)
            sampler.start()
            # Each run posts 5,000 new versions of its own.
            figures = measure(base, key, writer_key, world, n, sampler, seed=999 + n + count + seed_base)
            sampler.done.set()
            figures["worker RSS max"] = sampler.peak_kb / 1024
            result[count] = figures
            if count == workers[-1]:
                print(
                    f"size {n:,}: load, {clients} clients for {seconds:g} s, one request per "
                    f"{LOAD_INTERVAL:g} s each ...",
                    flush=True,
                )
                paced = load(base, key, writer_key, world, clients, seconds, LOAD_INTERVAL)
                print(f"size {n:,}: load, {clients} clients for {seconds:g} s, back to back ...", flush=True)
                saturated = load(base, key, writer_key, world, clients, seconds)
                result.update(
                    {
                        "load errors": paced["errors"] + saturated["errors"],
                        "load page p99": paced["p99"],
                        "load page p50": paced["p50"],
                        "load requests/s": paced["requests/s"],
                        "saturated requests/s": saturated["requests/s"],
                        "saturated page p50": saturated["p50"],
                        "saturated page p99": saturated["p99"],
                    }
                )
        finally:
            proc.terminate()
            proc.wait()
            if log is not subprocess.DEVNULL:
                log.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 versions only, no peers, 10 s of load")
    parser.add_argument("--sizes", default="10000,1000000", help="comma-separated collection sizes")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients in the load workload")
    parser.add_argument("--seconds", type=float, default=60, help="duration of the load workload")
    parser.add_argument(
        "--workers",
        default=None,
        help="comma-separated gunicorn worker counts to measure (default 1,2; --quick: 2); "
        "the load workload runs with the last",
    )
    parser.add_argument("--peers", default="medallion,opentaxii", help="peer servers to run ('' for none)")
    parser.add_argument("--peer-sizes", default="1000,10000", help="collection sizes for the peers")
    parser.add_argument(
        "--peer-timeout",
        type=float,
        default=120,
        help="seconds each peer workload may take before it counts as not finished",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --db: measure a database an earlier run loaded with at least the size, without loading again",
    )
    parser.add_argument("--chart", default=str(ROOT / "bench" / "page-latency.png"), help="where to draw the chart")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    seconds = 10 if args.quick else args.seconds
    peer_names = [] if args.quick else [p for p in args.peers.split(",") if p]
    peer_sizes = [int(x) for x in args.peer_sizes.split(",")]
    workers = [int(x) for x in (args.workers or ("2" if args.quick else "1,2")).split(",")]
    engine = "PostgreSQL" if args.db else "SQLite"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {engine}, "
        f"load average {_loadavg()}, CPU reference {cpu_reference():.2f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: run_size(n, args.db, Path(tmp), args.clients, seconds, workers, args.reuse) for n in sizes}
        peer_results = run_peers(peer_names, peer_sizes, Path(tmp), args.peer_timeout)
    print_table(results, sizes, workers)
    main_figures = {n: {**results[n], **results[n][workers[-1]]} for n in sizes}
    print_ratios(main_figures, peer_results)
    if peer_results or len(sizes) > 1:
        draw_chart(Path(args.chart), engine, main_figures, peer_results)
    print(f"load average at the end: {_loadavg()}")


def cpu_reference() -> float:
    """Seconds one core takes for a fixed pure-Python loop: compares figures made on different machines."""
    start, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - start


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"


def print_table(results: dict[int, dict], sizes: list[int], workers: list[int]) -> None:
    """One table: every goal, the figure per size and worker count, and whether it meets the goal.

    Figures that do not depend on the workers (bulk import, the load run with the last count) appear
    in the column of the last worker count only.
    """
    columns = [(n, w) for n in sizes for w in workers]
    width = 22

    def figure(n: int, w: int, name: str) -> float | None:
        if name in results[n][w]:
            return results[n][w][name]
        return results[n].get(name) if w == workers[-1] else None

    heads = "".join(f"{f'{n:,} x{w}':>{width}}" for n, w in columns)
    print(f"\nfigures per size x gunicorn workers\n{'workload':<22}{heads}  goal")
    met = {column: [0, 0] for column in columns}
    for name, (goal, test) in GOALS.items():
        cells = []
        for column in columns:
            value = figure(*column, name)
            if value is None:
                cells.append(f"{'-':>{width}}")
                continue
            ok = test(value)
            met[column][0] += ok
            met[column][1] += 1
            cells.append(f"{_fmt(name, value) + (' met' if ok else ' NOT met'):>{width}}")
        print(f"{name:<22}{''.join(cells)}  {goal}")
    for name in (
        "first page ms",
        "last page ms",
        "pull RSS max",
        "visible",
        "load page p50",
        "load requests/s",
        "saturated requests/s",
        "saturated page p50",
        "saturated page p99",
    ):
        cells = "".join(f"{_fmt(name, figure(*c, name)):>{width}}" for c in columns)
        print(f"{name:<22}{cells}")
    print(f"{'goals met':<22}" + "".join(f"{f'{a} of {b}':>{width}}" for a, b in met.values()))


COMPARED = ("pull", "head poll p50", "object GET p50", "POST 1,000/envelope", "bulk import")


def run_peers(names: list[str], sizes: list[int], workdir: Path, timeout: float) -> dict[str, dict[int, dict]]:
    """Run each peer server on the same generated objects at each size (``timeout`` s per workload)."""
    if not names:
        return {}
    from bench import peers

    out: dict[str, dict[int, dict]] = {}
    for name in names:
        for n in sizes:
            objects = peers.workload(n)
            print(f"running {name} at {n:,} objects ...", flush=True)
            out.setdefault(name, {})[n] = peers.run_peer(name, n, workdir / f"{name}-{n}", objects, timeout)
    return out


def print_ratios(hub: dict[int, dict], peers: dict[str, dict[int, dict]]) -> None:
    """Print each peer's figures and how many times faster the hub is (throughput up, latency down)."""
    for name, by_size in peers.items():
        print(f"\n{name}: peer figure (hub speed-up where the hub ran the same size)")
        for n, result in sorted(by_size.items()):
            cells = []
            for workload in COMPARED:
                value = result.get(workload)
                if value is None:
                    cells.append(f"{workload}: " + ("none" if workload == "bulk import" else "did not finish"))
                    continue
                mine = hub.get(n, {}).get(workload)
                speed = (mine / value if "p50" not in workload else value / mine) if mine else None
                cells.append(f"{workload}: {_fmt(workload, value)}" + (f" ({speed:,.1f}x)" if speed else ""))
            print(f"  {n:>9,}  " + "; ".join(cells))


def draw_chart(path: Path, engine: str, hub: dict[int, dict], peers: dict[str, dict[int, dict]]) -> None:
    """Draw time per 1,000-object page against collection size for the hub and the peers."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no chart; pip install matplotlib, as make bench does)")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    series = {f"cti-hub ({engine})": hub, **peers}
    for label, by_size in series.items():
        points = sorted((n, 1000 / r["pull"] * 1000) for n, r in by_size.items() if r.get("pull"))
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("object versions in the collection")
    ax.set_ylabel("ms per 1,000-object page (full pull)")
    ax.set_title("TAXII page latency against collection size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"chart written to {path}")


def _fmt(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name in ("load errors", "visible"):
        return f"{value:,.0f}"
    goal = GOALS[name][0] if name in GOALS else name
    if "MB" in goal or "RSS" in goal:
        return f"{value:,.0f} MB"
    if "obj/s" in goal or name in ("pull", "bulk import"):
        return f"{value:,.0f}/s"
    if name.endswith("requests/s"):
        return f"{value:,.0f}/s"
    if "ms" in goal or name.endswith(("p50", "p99")):
        return f"{value:.1f} ms"
    return f"{value:.2f}x"


if __name__ == "__main__":
    main()
