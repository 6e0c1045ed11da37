"""Benchmark the hub through real HTTP under gunicorn, with the sharing rules enforced.

Generates deterministic DPRK-style data (hub.demo_data), loads it through the same
ingest path as TAXII POST, serves it with `cti-hub serve`, and measures each
workload of the performance goals with a real HTTP client as a partner that sees
about half of the collection. Prints one table with the goal beside each figure.

    python bench/run.py --quick                 # 10,000 versions, SQLite
    python bench/run.py --sizes 10000,1000000   # the goals' sizes
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
from pathlib import Path

import orjson
import requests
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub import create_app, db, demo_data, services  # noqa: E402
from hub.policy import TLP  # noqa: E402
from tests import factories as f  # noqa: E402

TAXII = "application/taxii+json;version=2.1"
GOALS = {
    "pull": ">= 50,000 obj/s",
    "last/first page": "<= 1.5x",
    "head poll p50": "<= 5 ms",
    "head poll p99": "<= 25 ms",
    "object GET p50": "<= 5 ms",
    "POST 1,000/envelope": ">= 5,000 obj/s",
    "bulk import": ">= 20,000 obj/s",
    "worker RSS max": "< 300 MB",
    "load errors": "0",
    "load page p99": "<= 250 ms",
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def setup_world(hub: services.Hub) -> dict:
    """Two publishers; the reader `singcert` (clearance AMBER) sees roughly half of the collection."""
    with hub.session() as s:
        f.hub_partner(s)
        kr = f.add_partner(s, "krcert", "KR", TLP.RED)
        cisa = f.add_partner(s, "cisa", "US", TLP.RED)
        f.add_partner(s, "singcert", "SG", TLP.AMBER)
        f.add_group(s, "rokus", [kr, cisa])
        root = f.add_root(s, "dprk", max_content_length=64 * 1024 * 1024)
        coll = f.add_collection(s, root, "intel", max_tlp=TLP.RED, default_tlp=TLP.GREEN)
        f.add_collection(s, root, "reference", max_tlp=TLP.CLEAR, default_tlp=TLP.CLEAR, writers=[],
                         reference=True)
        services.publish_reference(s)
        partners = {p: hub.snapshot(s).by_slug[p] for p in ("krcert", "cisa")}
        marking = f"marking-definition--{f.uuid.uuid5(services.NAMESPACE, 'group:rokus')}"
    return {"collection": coll.uuid, "partners": partners, "rokus_marking": marking}


def stream(n: int, world: dict, seed: int, slug: str) -> list[dict]:
    pub = demo_data.Publisher(slug, f"identity--{f.uuid.uuid5(services.NAMESPACE, slug)}")
    mix = {TLP.CLEAR: 0.1, TLP.GREEN: 0.4, TLP.AMBER: 0.2, TLP.AMBER_STRICT: 0.25, TLP.RED: 0.05}
    return list(demo_data.indicators(n, publishers=[pub], seed=seed, tlp_mix=mix,
                                     sharing_markings=[world["rokus_marking"]], sharing_ratio=0.1))


def bulk_load(hub: services.Hub, world: dict, n: int) -> float:
    """Load n versions through services.ingest_envelope (the import path); return objects/s."""
    slugs = list(world["partners"])
    start, done = time.perf_counter(), 0
    per = n // len(slugs)
    for i, slug in enumerate(slugs):
        objs = stream(per, world, seed=100 + i, slug=slug)
        for k in range(0, len(objs), 5000):
            services.ingest_envelope(hub, world["partners"][slug], world["collection"], objs[k:k + 5000])
        done += len(objs)
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


def load(base: str, key: str, writer_key: str, world: dict, clients: int, seconds: float) -> dict:
    """``clients`` threads for ``seconds``: page pulls, head polls and publishes; count errors, time pages."""
    url = f"{base}/dprk/collections/{world['collection']}/objects/"
    stop = time.perf_counter() + seconds
    pages: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(i: int) -> None:
        http = requests.Session()
        publisher = i % 5 == 0
        http.headers.update({"Accept": TAXII, "Content-Type": TAXII,
                             "Authorization": f"Bearer {writer_key if publisher else key}"})
        extra = stream(2000, world, seed=50_000 + i, slug="krcert") if publisher else []
        k = 0
        while time.perf_counter() < stop:
            t = time.perf_counter()
            try:
                if publisher:
                    r = http.post(url, data=orjson.dumps({"objects": extra[k:k + 100]}), timeout=30)
                    k = (k + 100) % len(extra)
                elif i % 2:
                    r = http.get(url, params={"limit": 1000}, timeout=30)
                else:
                    r = http.get(url, params={"added_after": "2099-01-01T00:00:00Z"}, timeout=30)
                ok = r.status_code in (200, 202)
            except requests.RequestException:
                ok = False
            with lock:
                if not ok:
                    errors[0] += 1
                elif not publisher:
                    pages.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    pages.sort()
    return {"load errors": errors[0], "load page p99": pages[int(len(pages) * 0.99) - 1] if pages else float("nan"),
            "load requests": len(pages)}


def measure(base: str, key: str, writer_key: str, world: dict, n: int) -> dict:
    http = requests.Session()
    http.headers.update({"Accept": TAXII, "Authorization": f"Bearer {key}"})
    url = f"{base}/dprk/collections/{world['collection']}/objects/"
    out: dict = {}
    for _ in range(8):  # warm every worker: snapshot loaded, statements compiled
        http.get(url, params={"limit": 10})
    pages, total, t0 = [], 0, time.perf_counter()
    params: dict = {"limit": 1000}
    while True:
        t = time.perf_counter()
        r = http.get(url, params=params)
        body = orjson.loads(r.content)  # parse as fast as a serious client would; this measures the server
        pages.append(time.perf_counter() - t)
        total += len(body.get("objects", []))
        if not body.get("more"):
            break
        params = {"limit": 1000, "next": body["next"]}
    out["pull"] = total / (time.perf_counter() - t0)
    out["visible"] = total
    out["last/first page"] = pages[-2] / pages[0] if len(pages) > 2 else 1.0
    last = r.headers["X-TAXII-Date-Added-Last"]
    polls = sorted(timed(lambda: http.get(url, params={"added_after": last})) for _ in range(300))
    out["head poll p50"], out["head poll p99"] = statistics.median(polls), polls[int(len(polls) * 0.99) - 1]
    ids = [o["id"] for o in http.get(url, params={"limit": 200}).json()["objects"]]
    gets = sorted(timed(lambda i=i: http.get(f"{url}{i}/")) for i in ids)
    out["object GET p50"] = statistics.median(gets)
    writer = requests.Session()
    writer.headers.update({"Accept": TAXII, "Content-Type": TAXII, "Authorization": f"Bearer {writer_key}"})
    posted, t0 = 0, time.perf_counter()
    extra = stream(5000, world, seed=999 + n, slug="krcert")
    for k in range(0, len(extra), 1000):
        r = writer.post(url, data=orjson.dumps({"objects": extra[k:k + 1000]}))
        posted += r.json()["success_count"]
    out["POST 1,000/envelope"] = posted / (time.perf_counter() - t0)
    return out


def run_size(n: int, db_url: str | None, workdir: Path, clients: int, seconds: float) -> dict:
    settings = {"data_dir": str(workdir), "secret_key": "bench-secret"}
    if db_url:
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
    world = setup_world(hub)
    result = {"bulk import": bulk_load(hub, world, n)}
    with hub.engine.begin() as conn:  # fresh planner statistics, as autovacuum would gather soon after a load
        conn.exec_driver_sql("ANALYZE")
    key, writer_key = f.key_for(hub, "singcert"), f.key_for(hub, "krcert")
    hub.engine.dispose()
    port = _port()
    env = {**os.environ, "HUB_DATABASE_URL": settings["database_url"], "HUB_SECRET_KEY": "bench-secret",
           "HUB_RATE_LIMIT_PER_MINUTE": "0",
           "HUB_DATA_DIR": str(workdir)}
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        sampler = RssSampler(proc.pid)
        sampler.start()
        result.update(measure(base, key, writer_key, world, n))
        sampler.done.set()
        result["worker RSS max"] = sampler.peak_kb / 1024
        result.update(load(base, key, writer_key, world, clients, seconds))
    finally:
        proc.terminate()
        proc.wait()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 versions only, no peers, 10 s of load")
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated collection sizes")
    parser.add_argument("--db", default=None, help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients in the load workload")
    parser.add_argument("--seconds", type=float, default=60, help="duration of the load workload")
    parser.add_argument("--peers", default="medallion,opentaxii", help="peer servers to run ('' for none)")
    parser.add_argument("--peer-sizes", default="1000,10000", help="collection sizes for the peers")
    parser.add_argument("--chart", default=str(ROOT / "bench" / "page-latency.png"), help="where to draw the chart")
    args = parser.parse_args()
    sizes = [10_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    seconds = 10 if args.quick else args.seconds
    peer_names = [] if args.quick else [p for p in args.peers.split(",") if p]
    peer_sizes = [int(x) for x in args.peer_sizes.split(",")]
    engine = "PostgreSQL" if args.db else "SQLite"
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {engine}")
    with tempfile.TemporaryDirectory() as tmp:
        results = {n: run_size(n, args.db, Path(tmp), args.clients, seconds) for n in sizes}
        peer_results = run_peers(peer_names, peer_sizes, Path(tmp))
    print(f"\n{'workload':<22}" + "".join(f"{n:>14,}" for n in sizes) + f"  {'goal':<18}")
    for name, goal in GOALS.items():
        row = "".join(f"{_fmt(name, results[n][name]):>14}" for n in sizes)
        print(f"{name:<22}{row}  {goal:<18}")
    print(f"{'visible to reader':<22}" + "".join(f"{results[n]['visible']:>14,}" for n in sizes))
    print_ratios(results, peer_results)
    if peer_results or len(sizes) > 1:
        draw_chart(Path(args.chart), engine, results, peer_results)


COMPARED = ("pull", "head poll p50", "object GET p50", "POST 1,000/envelope")


def run_peers(names: list[str], sizes: list[int], workdir: Path) -> dict[str, dict[int, dict]]:
    """Run each peer server on the same generated objects at each size."""
    if not names:
        return {}
    from bench import peers

    out: dict[str, dict[int, dict]] = {}
    for name in names:
        for n in sizes:
            objects = peers.workload(n)
            print(f"running {name} at {n:,} objects ...", flush=True)
            out.setdefault(name, {})[n] = peers.run_peer(name, n, workdir / f"{name}-{n}", objects)
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
                    cells.append(f"{workload}: did not finish")
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
        print("(matplotlib not installed: no chart; pip install '.[bench]')")
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


def _fmt(name: str, value: float) -> str:
    if name == "load errors":
        return f"{value:,.0f}"
    if "MB" in GOALS[name]:
        return f"{value:,.0f} MB"
    if "obj/s" in GOALS[name] or name in ("pull", "bulk import"):
        return f"{value:,.0f}/s"
    if "ms" in GOALS[name]:
        return f"{value:.1f} ms"
    return f"{value:.2f}x"


if __name__ == "__main__":
    main()
