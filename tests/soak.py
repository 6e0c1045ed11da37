"""Soak: mixed traffic from many clients against the real server, watching for errors and leaks.

50 concurrent clients run against `cti-hub serve --workers 2` on loopback for a while: publishers,
TAXII head pollers, paged pullers, feed exporters and admin-panel users. Afterwards the run is judged
on what an operator would look at: no 5xx or connection errors, no ``database is locked`` in the
server log, worker memory that stays flat, an intact audit chain and a ledger row for every TAXII page
that delivered objects.

    python -m tests.soak [--seconds 300] [--database-url URL]      (``make soak``)

``tests/test_soak.py`` runs it for 60 s (``HUB_TEST_SOAK_SECONDS``) on the test database.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests
from sqlalchemy import func, select

from hub import accounts, create_app, db
from hub import models as m
from tests import factories as f
from tests.live import ROOT, free_port, wait_ready
from tests.worlds import small_world

CLIENTS = 50
ADMIN_USER, ADMIN_PASSWORD = "soak-admin", "soak-admin-password-1"
FEED_FORMATS = ("stix", "csv", "ecs", "ip.txt", "sha256.txt")
ENVELOPE = 20
# Who the 50 clients are; each role has its own loop below.
ROLES = ("publish",) * 6 + ("head",) * 16 + ("pull",) * 12 + ("feed",) * 10 + ("admin",) * 6


@dataclass
class Report:
    """What the clients saw and what the server looked like while they ran."""

    requests: Counter = field(default_factory=Counter)  # role -> requests answered
    errors: list[str] = field(default_factory=list)  # 5xx, unexpected statuses, connection errors
    delivered_pages: int = 0  # TAXII object pages that held objects
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, workers' total RSS)
    workers: set[int] = field(default_factory=set)
    locked_lines: list[str] = field(default_factory=list)
    audit: str = ""
    ledger_pages: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, role: str, what: str) -> None:
        with self.lock:
            self.errors.append(f"{role}: {what}")

    def ok(self, role: str, delivered: bool = False) -> None:
        with self.lock:
            self.requests[role] += 1
            self.delivered_pages += delivered

    def rss_halves(self) -> tuple[int, int]:
        """Return the largest total RSS of the first and of the second half of the run (0 without samples)."""
        middle = self.rss[-1][0] / 2 if self.rss else 0
        first = [r for t, r in self.rss if t <= middle]
        second = [r for t, r in self.rss if t > middle]
        return max(first, default=0), max(second, default=0)

    def problems(self) -> list[str]:
        """Everything wrong with the run, in words; empty when it passed."""
        out = [*self.errors[:20]]
        out += [f"server log: {line}" for line in self.locked_lines[:5]]
        first, second = self.rss_halves()
        if not (first and second):
            out.append("the RSS sampler did not see the workers")
        elif second > first * 1.5 + 20 * 2**20:
            out.append(
                f"worker RSS grew: max {first / 2**20:.0f} MB in the first half, {second / 2**20:.0f} MB in the second"
            )
        if len(self.workers) != 2:
            out.append(f"workers were replaced during the run: saw pids {sorted(self.workers)}")
        if "audit chain intact" not in self.audit:
            out.append(f"audit verify: {self.audit}")
        if self.ledger_pages != self.delivered_pages:
            out.append(f"ledger holds {self.ledger_pages} delivered pages, clients received {self.delivered_pages}")
        missing = {role for role in ROLES} - set(self.requests)
        if missing:
            out.append(f"no successful requests for {sorted(missing)}")
        return out


class Soak:
    """One soak run: a prepared database, the server, the clients and the RSS sampler."""

    def __init__(self, database_url: str, workdir: Path, seconds: float) -> None:
        self.database_url, self.workdir, self.seconds = database_url, workdir, seconds
        self.settings = {"database_url": database_url, "data_dir": str(workdir), "secret_key": "soak-secret-key"}
        self.report = Report()
        self.stop = threading.Event()
        self.numbers = itertools.count()
        self.base = ""

    def prepare(self) -> None:
        app = create_app(self.settings)
        hub = app.extensions["cti_hub"]
        try:
            self.world = small_world(hub)
            with hub.session() as s:
                accounts.create_admin(s, ADMIN_USER, ADMIN_PASSWORD)
        finally:
            hub.engine.dispose()
        self.headers = {
            slug: {"Authorization": f"Bearer {key}", "Accept": f.TAXII} for slug, key in self.world["keys"].items()
        }

    def run(self) -> Report:
        self.prepare()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "CTI_HUB_DATABASE_URL": self.database_url,
            "CTI_HUB_SECRET_KEY": self.settings["secret_key"],
            "CTI_HUB_DATA_DIR": str(self.workdir),
            "CTI_HUB_RATE_LIMIT_PER_MINUTE": "0",
            "CTI_HUB_ADMIN_MFA_REQUIRED": "false",  # the soak's administrator logs in with a password alone
        }
        log_path = self.workdir / "soak-server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
                env=env,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
            try:
                wait_ready(self.base, proc)
                self._drive(proc.pid)
            finally:
                proc.send_signal(signal.SIGTERM)  # graceful: workers flush their batched ledger rows
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=20)
        text = log_path.read_text(errors="replace")
        self.report.locked_lines = [line for line in text.splitlines() if "database is locked" in line]
        self._check_records()
        return self.report

    def _drive(self, master: int) -> None:
        threads = [threading.Thread(target=self._client, args=(role,), daemon=True) for role in ROLES]
        sampler = threading.Thread(target=self._sample, args=(master,), daemon=True)
        for t in (*threads, sampler):
            t.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in (*threads, sampler):
            t.join(timeout=120)

    def _check_records(self) -> None:
        env = {
            **os.environ,
            "CTI_HUB_DATABASE_URL": self.database_url,
            "CTI_HUB_SECRET_KEY": self.settings["secret_key"],
        }
        done = subprocess.run(
            [sys.executable, "-m", "hub.cli", "audit", "verify"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.report.audit = (done.stdout + done.stderr).strip()
        engine = db.make_engine(self.database_url)
        try:
            with engine.connect() as conn:
                self.report.ledger_pages = conn.execute(
                    select(func.count())
                    .select_from(m.Delivery)
                    .where(m.Delivery.endpoint == "objects", m.Delivery.count > 0)
                ).scalar_one()
        finally:
            engine.dispose()

    # ----------------------------------------------------------------- clients

    def _client(self, role: str) -> None:
        http, state = requests.Session(), {}
        loop = getattr(self, f"_{role}")
        while not self.stop.is_set():
            try:
                loop(http, state)
            except requests.RequestException as exc:
                self.report.error(role, f"connection error: {exc!r}")
                time.sleep(0.5)

    def _check(self, role: str, r: requests.Response, expected: int = 200) -> bool:
        if r.status_code != expected:
            self.report.error(role, f"{r.request.method} {r.url} -> {r.status_code} {r.text[:200]!r}")
            self.stop.wait(0.5)
            return False
        return True

    def _publish(self, http: requests.Session, state: dict) -> None:
        first = next(self.numbers) * ENVELOPE
        objects = [f.indicator(i) for i in range(first, first + ENVELOPE)]
        r = http.post(
            self.base + self.world["url"],
            json={"objects": objects},
            timeout=60,
            headers={**self.headers["krcert"], "Content-Type": f.TAXII},
        )
        if self._check("publish", r, 202):
            self.report.ok("publish")
        self.stop.wait(0.5)

    def _head(self, http: requests.Session, state: dict) -> None:
        """A SIEM polling for what is new: added_after its last X-TAXII-Date-Added-Last, mostly empty pages."""
        after = state.get("after")
        params = {"limit": "100", **({"added_after": after} if after else {})}
        r = http.get(self.base + self.world["url"], params=params, headers=self.headers["mycert"], timeout=60)
        if self._check("head", r):
            objects = r.json().get("objects", [])
            state["after"] = r.headers.get("X-TAXII-Date-Added-Last") or after
            self.report.ok("head", delivered=bool(objects))
        self.stop.wait(1.0)

    def _pull(self, http: requests.Session, state: dict) -> None:
        """A new subscriber paging from the beginning with next (up to 10 pages), then starting over."""
        params: dict = {"limit": "200"}
        for _ in range(10):
            r = http.get(self.base + self.world["url"], params=params, headers=self.headers["cisa"], timeout=60)
            if not self._check("pull", r):
                return
            body = r.json()
            self.report.ok("pull", delivered=bool(body.get("objects")))
            if not body.get("more") or self.stop.is_set():
                break
            params = {"limit": "200", "next": body["next"]}
        self.stop.wait(0.5)

    def _feed(self, http: requests.Session, state: dict) -> None:
        """A firewall or SIEM fetching a flat feed, incrementally with since= after its first full fetch."""
        state["turn"] = turn = state.get("turn", -1) + 1
        fmt, since = FEED_FORMATS[turn % len(FEED_FORMATS)], state.get("since")
        started = time.time()
        r = http.get(
            f"{self.base}/feeds/dprk/{self.world['shared']}/{fmt}",
            params={"since": since} if since else {},
            headers=self.headers["cisa"],
            timeout=120,
        )
        if self._check("feed", r):
            state["since"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started - 1))
            self.report.ok("feed")
        self.stop.wait(1.0)

    def _admin(self, http: requests.Session, state: dict) -> None:
        """An administrator logged in to the panel, looking at the dashboard, objects and audit trail."""
        if not state.get("logged_in"):
            page = http.get(self.base + "/admin/login", timeout=60)
            token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
            if not self._check("admin", page) or token is None:
                return
            r = http.post(
                self.base + "/admin/login",
                data={"csrf_token": token[1], "username": ADMIN_USER, "password": ADMIN_PASSWORD},
                allow_redirects=False,
                timeout=60,
            )
            if not self._check("admin", r, 302):
                return
            state["logged_in"] = True
        for path in ("/admin/", "/admin/objects/", "/admin/audit"):
            r = http.get(self.base + path, allow_redirects=False, timeout=60)
            if self._check("admin", r):
                self.report.ok("admin")
            self.stop.wait(0.5)

    # ----------------------------------------------------------------- memory

    def _sample(self, master: int) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            workers = _children(master)
            self.report.workers.update(workers)
            total = sum(_rss(pid) for pid in workers)
            if total:
                self.report.rss.append((time.monotonic() - start, total))
            self.stop.wait(1.0)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers under its master)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("HUB_TEST_SOAK_SECONDS", "300")))
    parser.add_argument("--database-url", help="an empty database to use, migrated or not (default: a new SQLite file)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cti-hub-soak-"))
    url = args.database_url or f"sqlite:///{workdir / 'soak.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    report = Soak(url, workdir, args.seconds).run()
    first, second = report.rss_halves()
    print(
        f"requests: {dict(report.requests)}; TAXII pages with objects: {report.delivered_pages}; "
        f"worker RSS max {first / 2**20:.0f} MB then {second / 2**20:.0f} MB; {report.audit}"
    )
    problems = report.problems()
    for problem in problems:
        print(f"FAIL {problem}")
    if problems:
        print(f"server log and database kept in {workdir}")
        return 1
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
