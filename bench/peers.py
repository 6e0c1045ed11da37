"""Run the hub benchmark's workloads against medallion 3.0.0 and OpenTAXII 0.9.3.

Each peer runs in its own process with the given objects loaded into one
collection readable and writable by one Basic-auth user, and is measured through
real HTTP with the same requests as bench/run.py: a full paged pull with
``limit=1000``, head polls with ``added_after`` set to the last page's
``X-TAXII-Date-Added-Last``, single object GETs and TAXII POSTs of 1,000-object
envelopes.

- medallion 3.0.0, memory backend (the package in this virtual environment): the
  objects are written to its JSON data file and served by gunicorn with one sync
  worker, because the backend's data and its ``next`` sessions live in the process.
- OpenTAXII 0.9.3, SQLite, TAXII 2 only, served by gunicorn with two sync workers
  like the hub. It gets its own virtual environment (``OPENTAXII_VENV``, default
  ``$TMPDIR/opentaxii-0.9.3-venv``), created on first use. The objects are loaded
  with its persistence API (``add_objects`` in chunks of 1,000), timed as bulk import.

Every workload has a time budget (``WORKLOAD_TIMEOUT``); a throughput workload that
does not finish within it is recorded as None. Latency workloads stop sampling at
the budget and report percentiles over the samples taken (None under
``MIN_SAMPLES``); the sample counts are in the result.

    python bench/peers.py --peer medallion --size 1000
    python bench/peers.py --peer opentaxii --size 10000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import requests

PEERS = ("medallion", "opentaxii")
TAXII = "application/taxii+json;version=2.1"
STIX = "application/stix+json;version=2.1"
WORKLOAD_TIMEOUT = 120.0
LOAD_TIMEOUT = 3600.0
MIN_SAMPLES = 5
POLLS = 300
POST_OBJECTS = 5000
USER, PASSWORD = "bench", "bench-password"
ROOT = Path(__file__).resolve().parents[1]

OPENTAXII_VERSION = "0.9.3"
OPENTAXII_VENV = Path(os.environ.get("OPENTAXII_VENV", Path(tempfile.gettempdir()) / "opentaxii-0.9.3-venv"))

_NAMESPACE = uuid.UUID("9d0c3a55-1f3e-4b7a-8e64-5b2f0c1d7a93")


class _OutOfTime(Exception):
    """A workload's time budget ran out."""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stream(n: int, seed: int, slug: str) -> list[dict]:
    """The objects bench/run.py's ``stream`` yields for the same arguments."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from hub.demo import data as demo_data
    from hub.ids import HUB_NAMESPACE
    from hub.policy import TLP

    pub = demo_data.Publisher(slug, f"identity--{uuid.uuid5(HUB_NAMESPACE, slug)}")
    rokus = f"marking-definition--{uuid.uuid5(HUB_NAMESPACE, 'group:rokus')}"
    mix = {TLP.CLEAR: 0.1, TLP.GREEN: 0.4, TLP.AMBER: 0.2, TLP.AMBER_STRICT: 0.25, TLP.RED: 0.05}
    return list(
        demo_data.indicators(n, publishers=[pub], seed=seed, tlp_mix=mix, sharing_markings=[rokus], sharing_ratio=0.1)
    )


def workload(n: int) -> list[dict]:
    """The n versions bench/run.py loads: half published by krcert, half by cisa."""
    per = n // 2
    return [o for i, slug in enumerate(("krcert", "cisa")) for o in stream(per, seed=100 + i, slug=slug)]


# --- measuring -------------------------------------------------------------------------


class _Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    def left(self) -> float:
        left = self.end - time.perf_counter()
        if left <= 0:
            raise _OutOfTime
        return left


class _Abandoned(Exception):
    """A request timed out: the server may still be working on it."""


def _latencies(fn: Callable[[float], requests.Response], count: int, budget: _Budget) -> tuple[list[float], bool]:
    """Up to ``count`` timings (ms) of ``fn(timeout)`` within the budget, and whether one timed out."""
    out: list[float] = []
    try:
        for _ in range(count):
            left = budget.left()
            t = time.perf_counter()
            fn(left).raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
    except _OutOfTime:
        return sorted(out), False
    except requests.Timeout:
        return sorted(out), True
    return sorted(out), False


def _p99(values: list[float]) -> float:
    return values[max(int(len(values) * 0.99) - 1, 0)]


def measure(
    url: str,
    auth: tuple[str, str],
    extra: list[dict],
    timeout: float = WORKLOAD_TIMEOUT,
    recover: Callable[[], None] = lambda: None,
    ids: list[str] | None = None,
) -> dict:
    """Run bench/run.py's workloads against the objects endpoint ``url``.

    ``recover`` is called after a request timed out, so that the next workload does not
    queue behind a server still busy with it (e.g. restart the server). ``ids`` are the
    objects to GET one by one; by default those of a ``limit=200`` page, as bench/run.py.
    """
    http = requests.Session()
    http.auth = auth
    http.headers.update({"Accept": TAXII})
    out: dict = {
        "pull": None,
        "last/first page": None,
        "visible": None,
        "head poll p50": None,
        "head poll p99": None,
        "head poll samples": 0,
        "object GET p50": None,
        "object GET samples": 0,
        "POST 1,000/envelope": None,
        "errors": {},
    }

    def get(params: dict | None, budget: _Budget, path: str = "") -> requests.Response:
        try:
            r = http.get(f"{url}{path}", params=params, timeout=budget.left())
        except requests.Timeout as e:
            raise _Abandoned from e
        r.raise_for_status()
        return r

    def unfinished(workload: str, detail: str, abandoned: bool) -> None:
        out["errors"][workload] = f"unfinished after {timeout:.0f} s: {detail}"
        if abandoned:
            recover()

    budget, pages, total, last = _Budget(timeout), [], 0, None
    params: dict = {"limit": 1000}
    t0 = time.perf_counter()
    try:
        while True:
            t = time.perf_counter()
            r = get(params, budget)
            body = r.json()
            pages.append(time.perf_counter() - t)
            total += len(body.get("objects", []))
            last = r.headers.get("X-TAXII-Date-Added-Last", last)
            if not body.get("more"):
                break
            params = {"limit": 1000, "next": body["next"]}
        out["pull"] = total / (time.perf_counter() - t0)
        out["visible"] = total
        out["last/first page"] = pages[-2] / pages[0] if len(pages) > 2 else 1.0
    except (_OutOfTime, _Abandoned) as e:
        unfinished("pull", f"{total:,} objects in {len(pages)} pages", isinstance(e, _Abandoned))
        last = None
    except requests.RequestException as e:
        out["errors"]["pull"] = str(e)
        last = None

    if last is None:
        out["errors"]["head poll"] = "no X-TAXII-Date-Added-Last from a finished pull"
    else:
        polls, abandoned = _latencies(
            lambda left: http.get(url, params={"added_after": last}, timeout=left), POLLS, _Budget(timeout)
        )
        out["head poll samples"] = len(polls)
        if len(polls) >= MIN_SAMPLES:
            out["head poll p50"], out["head poll p99"] = statistics.median(polls), _p99(polls)
        if len(polls) < POLLS:
            unfinished("head poll", f"{len(polls)} of {POLLS} polls", abandoned)

    budget = _Budget(timeout)
    try:
        if ids is None:
            ids = [o["id"] for o in get({"limit": 200}, budget).json()["objects"]]
        ids = iter(ids[:200])
        gets, abandoned = _latencies(lambda left: http.get(f"{url}{next(ids)}/", timeout=left), 200, budget)
        out["object GET samples"] = len(gets)
        if len(gets) >= MIN_SAMPLES:
            out["object GET p50"] = statistics.median(gets)
        if len(gets) < 200:
            unfinished("object GET", f"{len(gets)} of 200 GETs", abandoned)
    except (_OutOfTime, _Abandoned) as e:
        unfinished("object GET", "no page of 200 ids to GET", isinstance(e, _Abandoned))
    except requests.RequestException as e:
        out["errors"]["object GET"] = str(e)

    writer = requests.Session()
    writer.auth = auth
    writer.headers.update({"Accept": TAXII, "Content-Type": TAXII})
    budget, posted = _Budget(timeout), 0
    t0 = time.perf_counter()
    try:
        for k in range(0, len(extra), 1000):
            r = writer.post(url, data=orjson.dumps({"objects": extra[k : k + 1000]}), timeout=budget.left())
            r.raise_for_status()
            posted += r.json()["success_count"]
        out["POST 1,000/envelope"] = posted / (time.perf_counter() - t0)
    except (_OutOfTime, requests.Timeout):
        unfinished("POST", f"{posted:,} objects accepted", False)
    except requests.RequestException as e:
        out["errors"]["POST"] = str(e)
    return out


class _Server:
    """A peer's server process, answering Basic-auth requests at ``ready_url`` once started."""

    def __init__(self, cmd: list[str], env: dict, cwd: Path, log: Path, ready_url: str, timeout: float) -> None:
        self.cmd, self.env, self.cwd, self.log = cmd, env, cwd, log
        self.ready_url, self.timeout = ready_url, max(timeout, 60.0)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as log_file:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, cwd=self.cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with status {self.proc.returncode}, see {self.log}")
            try:
                r = requests.get(self.ready_url, auth=(USER, PASSWORD), headers={"Accept": TAXII}, timeout=5)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer {self.ready_url} within {self.timeout:.0f} s, see {self.log}")

    def stop(self) -> None:
        """Stop the server and its workers, even a worker still busy with an abandoned request."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _gunicorn(executable: Path, port: int, workers: int, timeout: float) -> list[str]:
    """gunicorn's command line, without a control socket shared with other servers on the host."""
    cmd = [
        str(executable),
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        str(int(4 * timeout)),
        "--graceful-timeout",
        "5",
    ]
    usage = subprocess.run([str(executable), "--help"], capture_output=True, text=True).stdout
    return cmd + (["--no-control-socket"] if "--no-control-socket" in usage else [])


def _serve_and_measure(
    cmd: list[str],
    env: dict,
    cwd: Path,
    log: Path,
    ready_url: str,
    objects_url: str,
    objects: list[dict],
    extra: list[dict],
    timeout: float,
) -> dict:
    """Serve with ``cmd`` and measure; the objects GET one by one are the first 200 loaded,
    so that a peer too slow to list its collection still gets its single-object GET measured."""
    server = _Server(cmd, env, cwd, log, ready_url, timeout)
    ids = list(dict.fromkeys(o["id"] for o in objects))[:200]
    try:
        server.start()
        return measure(objects_url, (USER, PASSWORD), extra, timeout, recover=server.restart, ids=ids)
    finally:
        server.stop()


# --- medallion -------------------------------------------------------------------------

_MEDALLION_WSGI = """\
import os

from medallion import application_instance, load_app

load_app(os.environ["MEDALLION_CONFIG"])
app = application_instance
"""


def _stix_time(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def medallion_data(objects: list[dict], base: str, collection_id: str) -> dict:
    """medallion's memory backend data file: one API root ``dprk`` with one collection.

    Each object gets a manifest entry with its own date_added, one microsecond apart in
    list order and ending now, as if they had been posted in that order.
    """
    start = datetime.now(UTC) - timedelta(microseconds=len(objects))
    manifest = [
        {
            "id": o["id"],
            "date_added": _stix_time(start + timedelta(microseconds=i)),
            "version": o.get("modified", o.get("created")),
            "media_type": STIX,
        }
        for i, o in enumerate(objects)
    ]
    return {
        "/discovery": {"title": "medallion benchmark", "default": f"{base}/dprk/", "api_roots": [f"{base}/dprk/"]},
        "dprk": {
            "information": {"title": "DPRK", "versions": [TAXII], "max_content_length": 64 * 1024 * 1024},
            "status": [],
            "collections": [
                {
                    "id": collection_id,
                    "title": "intel",
                    "can_read": True,
                    "can_write": True,
                    "media_types": [STIX],
                    "objects": objects,
                    "manifest": manifest,
                }
            ],
        },
    }


def run_medallion(n: int, workdir: Path, objects: list[dict], extra: list[dict], timeout: float) -> dict:
    port = _port()
    base = f"http://127.0.0.1:{port}"
    collection_id = str(uuid.uuid5(_NAMESPACE, "medallion"))
    data = workdir / f"medallion-{n}.json"
    data.write_bytes(orjson.dumps(medallion_data(objects, base, collection_id)))
    config = workdir / f"medallion-{n}.conf.json"
    # session_timeout: how long a `next` token lives; the default 30 s is shorter than
    # medallion's own full pull at 10,000 objects, which would then fail half-way.
    config.write_text(
        json.dumps(
            {
                "backend": {
                    "module": "medallion.backends.memory_backend",
                    "module_class": "MemoryBackend",
                    "filename": str(data),
                    "session_timeout": int(4 * timeout),
                },
                "users": {USER: PASSWORD},
                "taxii": {"max_page_size": 1000},
            }
        )
    )
    (workdir / "medallion_wsgi.py").write_text(_MEDALLION_WSGI)
    cmd = _gunicorn(Path(sys.executable).with_name("gunicorn"), port, 1, timeout) + [
        "--chdir",
        str(workdir),
        "medallion_wsgi:app",
    ]
    env = {**os.environ, "MEDALLION_CONFIG": str(config)}
    result = _serve_and_measure(
        cmd,
        env,
        workdir,
        workdir / f"medallion-{n}.log",
        f"{base}/taxii2/",
        f"{base}/dprk/collections/{collection_id}/objects/",
        objects,
        extra,
        timeout,
    )
    return {"bulk import": None, **result}


# --- OpenTAXII -------------------------------------------------------------------------

_OPENTAXII_CONFIG = """\
domain: "127.0.0.1:{port}"
support_basic_auth: yes
return_server_error_details: yes
auth_api:
  class: opentaxii.auth.sqldb.SQLDatabaseAPI
  parameters:
    db_connection: sqlite:///{workdir}/opentaxii-auth-{n}.db
    create_tables: yes
    secret: bench-secret
    token_ttl_secs: 3600
taxii1:
taxii2:
  title: OpenTAXII benchmark
  max_content_length: 67108864
  public_discovery: no
  allow_custom_properties: yes
  persistence_api:
    class: opentaxii.persistence.sqldb.Taxii2SQLDatabaseAPI
    parameters:
      db_connection: sqlite:///{workdir}/opentaxii-data-{n}.db
      create_tables: yes
logging:
  opentaxii: warning
  root: warning
"""

# Run by the OpenTAXII virtual environment's python: creates the API root, the
# collection and the account, then loads the objects through the persistence API.
_OPENTAXII_SETUP = """\
import json, sys, time
from opentaxii.config import ServerConfig
from opentaxii.entities import Account
from opentaxii.middleware import create_app
from opentaxii.server import TAXIIServer

objects_file, user, password = sys.argv[1:4]
server = TAXIIServer(ServerConfig())
app = create_app(server)
with app.app_context():
    api = server.servers.taxii2.persistence.api
    root = api.add_api_root(title="dprk", default=True)
    collection = api.add_collection(api_root_id=str(root.id), title="intel")
    # An admin: 0.9.3's SQL auth stores one of 'read'/'modify' per collection, while its
    # TAXII 2 collections look for 'read'/'write' in a list, so only admins can use them.
    server.auth.api.update_account(Account(id=None, username=user, permissions={}, is_admin=True),
                                   password=password)
    with open(objects_file) as f:
        objects = json.load(f)
    t = time.perf_counter()
    for k in range(0, len(objects), 1000):
        api.add_objects(str(root.id), str(collection.id), objects[k:k + 1000])
    seconds = time.perf_counter() - t
print(json.dumps({"api_root": str(root.id), "collection": str(collection.id),
                  "rate": len(objects) / seconds if seconds else None}))
"""


# OpenTAXII 0.9.3 answers every TAXII 2 response holding a database id (a POST's status
# resource among them) with a 500, "Object of type UUID is not JSON serializable", after
# the work is done (eclecticiq/OpenTAXII#243, fixed upstream after 0.9.3). The venv gets
# the one-line workaround from that issue, which changes only how ids are written out.
_OPENTAXII_PATCH = """\
import opentaxii.taxii2.http as m
text = open(m.__file__).read()
old, new = "data = json.dumps(data)", "data = json.dumps(data, default=str)"
if new not in text:
    assert old in text, m.__file__
    open(m.__file__, "w").write(text.replace(old, new))
"""


def opentaxii_venv() -> Path:
    """The OpenTAXII virtual environment, created with pip on first use."""
    python = OPENTAXII_VENV / "bin" / "python"
    check = [str(python), "-c", f"import opentaxii, gunicorn; assert opentaxii.__version__ == {OPENTAXII_VERSION!r}"]
    if not (python.exists() and subprocess.run(check, capture_output=True).returncode == 0):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(OPENTAXII_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"opentaxii=={OPENTAXII_VERSION}", "gunicorn"], check=True
        )
        subprocess.run(check, check=True)
    subprocess.run([str(python), "-c", _OPENTAXII_PATCH], check=True)
    return python


def run_opentaxii(n: int, workdir: Path, objects: list[dict], extra: list[dict], timeout: float) -> dict:
    python = opentaxii_venv()
    port = _port()
    base = f"http://127.0.0.1:{port}"
    for stale in workdir.glob(f"opentaxii-*-{n}.db"):
        stale.unlink()
    config = workdir / f"opentaxii-{n}.yml"
    config.write_text(_OPENTAXII_CONFIG.format(port=port, workdir=workdir, n=n))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENTAXII_")}
    env["OPENTAXII_CONFIG"] = str(config)
    objects_file = workdir / f"opentaxii-objects-{n}.json"
    objects_file.write_bytes(orjson.dumps(objects))
    setup = subprocess.run(
        [str(python), "-c", _OPENTAXII_SETUP, str(objects_file), USER, PASSWORD],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=LOAD_TIMEOUT,
    )
    if setup.returncode != 0:
        raise RuntimeError(f"OpenTAXII setup failed:\n{setup.stderr[-4000:]}")
    loaded = json.loads(setup.stdout.strip().splitlines()[-1])
    objects_file.unlink()
    cmd = _gunicorn(python.with_name("gunicorn"), port, 2, timeout) + [
        "--config",
        "python:opentaxii.http",
        "opentaxii.http:app",
    ]
    result = _serve_and_measure(
        cmd,
        env,
        workdir,
        workdir / f"opentaxii-{n}.log",
        f"{base}/taxii2/",
        f"{base}/taxii2/{loaded['api_root']}/collections/{loaded['collection']}/objects/",
        objects,
        extra,
        timeout,
    )
    return {"bulk import": loaded["rate"], **result}


# --- entry points ----------------------------------------------------------------------


def run_peer(name: str, n: int, workdir: Path, objects: list[dict], timeout: float = WORKLOAD_TIMEOUT) -> dict:
    """Load ``objects`` (n STIX 2.1 objects) into peer ``name`` and measure bench/run.py's workloads.

    Returns obj/s for "pull", "POST 1,000/envelope" and "bulk import" (None when the peer has
    no bulk import), ms for "head poll p50/p99" and "object GET p50", the "last/first page"
    latency ratio, the number of objects "visible" in the pull, the latency sample counts, and
    "errors" naming each workload that did not finish. The POST workload sends the same
    5,000 new indicators as bench/run.py at this size.
    """
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}: expected one of {', '.join(PEERS)}")
    workdir.mkdir(parents=True, exist_ok=True)
    extra = stream(POST_OBJECTS, seed=999 + n, slug="krcert")
    runner = run_medallion if name == "medallion" else run_opentaxii
    return runner(n, workdir, objects, extra, timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", choices=PEERS, required=True)
    parser.add_argument("--size", type=int, default=1000, help="collection size in object versions")
    parser.add_argument("--timeout", type=float, default=WORKLOAD_TIMEOUT, help="seconds per workload")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep data files and server logs here (default: a temporary directory)",
    )
    args = parser.parse_args()
    objects = workload(args.size)
    if args.workdir:
        result = run_peer(args.peer, args.size, args.workdir.resolve(), objects, timeout=args.timeout)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_peer(args.peer, args.size, Path(tmp), objects, timeout=args.timeout)
    print(json.dumps({"peer": args.peer, "size": args.size, **result}, indent=2))


if __name__ == "__main__":
    main()
