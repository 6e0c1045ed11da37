"""Time the bulk-import path alone: wall objects/s and the storing process's CPU time per object.

Loads N generated DPRK-style versions (``bench/run.py``'s world and generator: indicators,
relationships, later versions, a TLP mix with sharing markings) through the bulk path of
`cti-hub feeds import stix` (``StixBundle.ingest``: chunks of 1,000, the next validated in a worker
process while this one is stored) into an empty hub of its own, and prints:

- the wall-clock rate (objects/s), which follows whatever else runs on the machine;
- the CPU time of the storing process per object (``time.process_time``: this process only, not the
  validation worker nor the database server), the figure to compare between two versions of the code
  on a shared host;
- the CPU time per object of the validation worker (the reaped children of this process) and, on
  PostgreSQL, of the server processes serving this database (``/proc``, the server on this machine):
  the three stages' sum is the work per object that the machine's cores share;
- with ``--profile``, the storing process's cProfile, top 25 by cumulative and by own time.

    python bench/import_profile.py --db sqlite -n 50000
    python bench/import_profile.py --db postgresql://postgres@127.0.0.1:5432/bench_import -n 50000 --profile

Done before the clock starts, once per process: the objects are generated (that is not importing
them) and then left out of the garbage collector's passes (``gc.freeze``: a streamed import never
holds them all), and the warninglists' indexes are built. ``--preload N`` loads N other versions
first, untimed, to measure the import into a fuller store. ``--chunk N`` stores N objects per
transaction instead of the import's default.
A PostgreSQL database is created for the run and dropped at its end; SQLite uses a temporary file.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.common import drop_database, fresh_hub  # noqa: E402
from bench.run import generate, setup_world  # noqa: E402
from feeds import base  # noqa: E402
from feeds.base import Item, resolve_target  # noqa: E402
from feeds.stix_bundle import StixBundle  # noqa: E402
from hub import warninglists  # noqa: E402
from hub.runtime import Hub  # noqa: E402


def load(hub: Hub, world: dict, n: int, seed: int) -> tuple[int, list[str]]:
    """Import n versions, split between the world's two publishers; return how many were handed over
    and each publisher's tally (the generator's RED objects without a sharing marking are refused, as in
    ``bench/run.py``)."""
    tallies = []
    for slug, objects in generated(world, n, seed):
        target = resolve_target(hub, slug, "intel", "dprk")
        tallies.append(f"{slug}: " + StixBundle(hub, target, source_label="bench").ingest(objects).summary())
    return sum(len(objects) for _, objects in generated(world, n, seed)), tallies


_GENERATED: dict[tuple[int, int], list[tuple[str, list[Item]]]] = {}


def generated(world: dict, n: int, seed: int) -> list[tuple[str, list[Item]]]:
    """The items of each publisher, generated once before the clock starts (generating is not importing)."""
    if (n, seed) not in _GENERATED:
        slugs = list(world["partners"])
        per = n // len(slugs)
        _GENERATED[(n, seed)] = [
            (slug, [Item(obj) for obj in generate(per, world, seed=seed + i, slug=slug)])
            for i, slug in enumerate(slugs)
        ]
    return _GENERATED[(n, seed)]


# One value of each kind the warninglists index: their tables are built on first use, once per process
# (about 4 s), which is not a cost per object.
WARM = (
    ("ipv4-addr", "192.0.2.1"),
    ("domain-name", "example.com"),
    ("url", "http://example.com/"),
    ("file:SHA-256", "0" * 64),
)


def children_cpu() -> float:
    """CPU seconds of this process's reaped children (the validation workers of finished imports)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def server_cpu(hub: Hub) -> float | None:
    """CPU seconds of the PostgreSQL processes serving the hub's database, when the server runs here."""
    if hub.engine.dialect.name != "postgresql":
        return None
    with hub.engine.connect() as conn:
        pids = conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE datname = current_database()").scalars()
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            except OSError:
                return None  # a server on another machine
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="sqlite", help="'sqlite' (a temporary file) or a PostgreSQL URL")
    parser.add_argument("-n", type=int, default=50_000, help="versions to import (timed)")
    parser.add_argument("--preload", type=int, default=0, help="versions to import first, untimed")
    parser.add_argument("--profile", action="store_true", help="print the storing process's cProfile top 25")
    parser.add_argument("--chunk", type=int, default=base.CHUNK, help="objects per transaction")
    args = parser.parse_args()
    if args.db != "sqlite" and not args.db.startswith("postgresql"):
        parser.error("--db takes 'sqlite' or a postgresql:// URL")
    db_url = None if args.db == "sqlite" else args.db
    engine_name = "SQLite" if db_url is None else "PostgreSQL"
    base.CHUNK = args.chunk
    with tempfile.TemporaryDirectory() as tmp:
        _, hub = fresh_hub(db_url, tmp, "import.db")
        try:
            world = setup_world(hub)
            if args.preload:
                generated(world, args.preload, seed=900)
                started = time.perf_counter()
                load(hub, world, args.preload, seed=900)
                print(f"preloaded {args.preload:,} versions in {time.perf_counter() - started:,.1f} s", flush=True)
            generated(world, args.n, seed=100)
            gc.collect()
            gc.freeze()  # the generated objects are the benchmark's, not the import's: no collection rescans them
            started = time.process_time()
            for kind, value in WARM:
                warninglists.match(kind, value)
            print(f"warninglist indexes built in {time.process_time() - started:,.2f} s of CPU (once per process)")
            profiler = cProfile.Profile() if args.profile else None
            load_before = os.getloadavg()
            server = server_cpu(hub)
            worker, cpu, wall = children_cpu(), time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            done, tallies = load(hub, world, args.n, seed=100)
            if profiler is not None:
                profiler.disable()
            wall, cpu, worker = time.perf_counter() - wall, time.process_time() - cpu, children_cpu() - worker
            server_after = server_cpu(hub)
            server = None if server is None or server_after is None else server_after - server
            load_after = os.getloadavg()
        finally:
            hub.engine.dispose()
            if db_url is not None:
                drop_database(db_url)
    print(
        f"{engine_name}: {done:,} versions after {args.preload:,} in {wall:,.2f} s: {done / wall:,.0f} objects/s; "
        f"storing process CPU {cpu:,.2f} s = {cpu / done * 1e6:,.1f} us/object"
        + (" (profiled: cProfile adds to both)" if profiler is not None else "")
    )
    stages = [("storing", cpu), ("validation worker", worker)] + ([("database server", server)] if server else [])
    total = sum(seconds for _, seconds in stages)
    print(
        f"CPU per object, chunks of {args.chunk:,}: "
        + ", ".join(f"{name} {seconds / done * 1e6:,.1f} us" for name, seconds in stages)
        + f"; sum {total / done * 1e6:,.1f} us, at most {done / total * (os.cpu_count() or 1):,.0f} objects/s "
        f"on {os.cpu_count()} cores"
    )
    print(f"load average {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end")
    print("\n".join(tallies))
    if profiler is not None:
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(25)
            print(f"--- top 25 by {order} ---")
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


if __name__ == "__main__":
    main()
