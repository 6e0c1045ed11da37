"""Time a CSV import with and without its progress output, and how soon the first progress appears.

Generates a CSV of ``--rows`` distinct IOCs (domains, IPv4 addresses, SHA-256 hashes), applies
``config/sharing.yaml`` to a template SQLite database once, then for each of ``--rounds`` rounds runs
``cti-hub feeds import csv`` as krcert into ``regional`` on a fresh copy of the template in each
mode, in turn:

- ``quiet``: ``cti-hub --quiet`` (no progress at all);
- ``json``: standard error a pipe (the JSON progress records);
- ``terminal``: standard error a pseudo-terminal (the live display);
- ``baseline`` (with ``--baseline DIR``): the same command from another source tree, e.g. an export
  of the previous release (``git archive main | tar -x -C DIR``), standard error a pipe.

It prints each run's wall time, CPU time (user + system, of the process and its children: less
disturbed than the wall time when other work shares the cores) and the time from the start of the
process to the first byte on standard error, then the medians per mode against ``quiet``. It also times the
reporter alone: the cost of one progress call, as an import of ``--rows`` rows makes one per row.

    python bench/import_progress.py [--rows 50000] [--rounds 3] [--modes quiet,json,terminal] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import pty
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.cli.progress import Progress  # noqa: E402 - after the repository is on sys.path

HUB = [sys.executable, "-m", "hub"]


def write_csv(path: Path, rows: int) -> None:
    with path.open("w") as out:
        out.write("value,type,notes\n")
        for n in range(rows):
            if n % 3 == 0:
                out.write(f"{hashlib.sha256(str(n).encode()).hexdigest()},sha256,sample {n}\n")
            elif n % 3 == 1:
                out.write(f"host{n}.example-bad{n % 97}.com,domain,C2 {n}\n")
            else:
                out.write(f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255},ip,scanner\n")


def _drain(fd: int, first: list[float], sink: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the pseudo-terminal closes with the process
            return
        if not chunk:
            return
        if not first:
            first.append(time.perf_counter())
        sink += chunk


def run_import(env: dict[str, str], csv: Path, mode: str, baseline: Path | None) -> tuple[float, float, float, str]:
    """Run one import; return (wall seconds, CPU seconds, seconds to the first byte on stderr, stdout)."""
    args = [*HUB, *(["--quiet"] if mode == "quiet" else []), "feeds", "import", "csv", str(csv)]
    args += ["--partner", "krcert", "--collection", "regional"]
    run_env = {**env, "PYTHONPATH": str(baseline if mode == "baseline" else ROOT)}
    first: list[float] = []
    sink = bytearray()
    if mode == "terminal":
        reader, writer = pty.openpty()
    else:
        reader, writer = os.pipe()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # Run from the work directory: ``python -m`` puts the current directory first on sys.path.
    proc = subprocess.Popen(args, env=run_env, stdout=subprocess.PIPE, stderr=writer, cwd=csv.parent)  # noqa: S603
    os.close(writer)
    drain = threading.Thread(target=_drain, args=(reader, first, sink))
    drain.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - start
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    drain.join()
    os.close(reader)
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: the import failed: {sink.decode(errors='replace')[-500:]}")
    return wall, cpu, (first[0] - start) if first else float("nan"), stdout.decode().strip()


def reporter_cost(calls: int) -> float:
    """Seconds per progress call of a JSON reporter writing to memory."""
    report = Progress("import", stream=io.StringIO(), terminal=False)
    start = time.perf_counter()
    for n in range(calls):
        report("read", n, calls, unit="rows")
    took = time.perf_counter() - start
    report.close()
    return took / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, help="another source tree to time beside (no --quiet there)")
    parser.add_argument("--modes", default="quiet,json,terminal", help="which of quiet, json, terminal to run")
    opts = parser.parse_args()
    modes = ["quiet", *(m for m in opts.modes.split(",") if m in ("json", "terminal"))]
    modes += ["baseline"] if opts.baseline else []
    with tempfile.TemporaryDirectory(prefix="bench-progress-") as tmp:
        work = Path(tmp)
        csv = work / "iocs.csv"
        write_csv(csv, opts.rows)
        env = {**os.environ, "CTI_HUB_SECRET_KEY": "bench-secret", "CTI_HUB_DATA_DIR": str(work / "data")}
        env["CTI_HUB_DATABASE_URL"] = f"sqlite:///{work / 'template.db'}"
        subprocess.run(  # noqa: S603
            [*HUB, "sharing", "apply", str(ROOT / "config" / "sharing.yaml")],
            env={**env, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
        times: dict[str, list[float]] = {m: [] for m in modes}
        cpus: dict[str, list[float]] = {m: [] for m in modes}
        print(f"{opts.rows} rows, {opts.rounds} rounds; load average {os.getloadavg()[0]:.2f} at the start")
        for round_no in range(1, opts.rounds + 1):
            for mode in modes:
                database = work / f"run-{mode}-{round_no}.db"
                shutil.copy(work / "template.db", database)
                wall, cpu, first, out = run_import(
                    {**env, "CTI_HUB_DATABASE_URL": f"sqlite:///{database}"}, csv, mode, opts.baseline
                )
                times[mode].append(wall)
                cpus[mode].append(cpu)
                print(
                    f"round {round_no} {mode:<9} {wall:7.2f} s wall, {cpu:6.2f} s CPU, "
                    f"first stderr byte after {first:6.2f} s: {out}"
                )
                database.unlink()
        print(f"\nmedians (load average {os.getloadavg()[0]:.2f} at the end):")
        quiet, quiet_cpu = statistics.median(times["quiet"]), statistics.median(cpus["quiet"])
        for mode in modes:
            wall, cpu = statistics.median(times[mode]), statistics.median(cpus[mode])
            print(
                f"  {mode:<9} {wall:7.2f} s wall ({100 * (wall - quiet) / quiet:+5.1f}%), "
                f"{cpu:6.2f} s CPU ({100 * (cpu - quiet_cpu) / quiet_cpu:+5.1f}%) against quiet"
            )
    cost = reporter_cost(opts.rows)
    print(f"one progress call: {cost * 1e6:.2f} us; {opts.rows} calls: {cost * opts.rows * 1000:.1f} ms")


if __name__ == "__main__":
    main()
