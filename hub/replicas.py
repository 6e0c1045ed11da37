"""Reads from PostgreSQL streaming replicas: which replica may answer a read, and when only the primary may.

``read_database_urls`` names hot-standby replicas of ``database_url``. Which server answers, in order:

1. Writes, everything inside a unit of work, authentication, the sharing rules and status resources
   go to the primary, always: a revoked key, a suspended partner or a narrowed rule takes effect at
   once, and a partner reads the status of its own POST the moment the 202 is sent.
2. A read that continues from a position (the last ``date_added`` of a ``next`` token, an
   ``added_after``, a feed's ``since``) goes only to a replica that has replayed that position: its
   ``hub_state.clock_us``, written by the same transactions that hand out ``date_added`` values, is at
   or past it.
3. A panel read after the administrator's own change goes only to a replica whose replay LSN is at
   or past the primary's WAL position read right after that change (read your own writes).
4. Any other read goes to a replica that answers, is in recovery and lags at most
   ``max_replica_lag_seconds``, taking the usable replicas in turn.
5. With no such replica, the primary answers; a replica that fails during a read has that read
   retried on the primary and is skipped until a later check finds it well.

Why a replica cannot lose an object: ``date_added`` values are handed out under the clock row's lock
and each writer commits before the next takes the lock (``hub.store.clock``), so commit records reach
the WAL in ``date_added`` order; a hot standby makes transactions visible in replay order, so at every
moment a replica holds a prefix, in ``date_added`` order, of what the primary committed. A replica
whose clock is at or past a position holds every version dated up to it, and everything dated later
is still to come, in order.

Lag is checked by a thread per process every ``CHECK_EVERY_S`` (requests never wait for a check): the
primary's ``pg_current_wal_lsn()`` is read first; a replica that has replayed up to it lags 0 s, however
long ago the primary last committed (an idle primary makes ``pg_last_xact_replay_timestamp()`` age
although the replica is current). Otherwise its lag is the age of the last transaction it replayed, an
upper bound: the oldest transaction it misses committed after that one.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prometheus_client import Counter
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from hub import db

log = logging.getLogger(__name__)
T = TypeVar("T")

CHECK_EVERY_S = 1.0
CONNECT_TIMEOUT_S = 2
# A replica read that takes longer than this is cancelled and retried on the primary (a stuck replica).
STATEMENT_TIMEOUT_MS = 30_000

READS = Counter(
    "cti_hub_replica_reads_total",
    "Reads that a replica could answer, by the server that answered (replica or primary)",
    ["server"],
)

_PRIMARY = text("SELECT pg_current_wal_lsn()::text")
_CHECK = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
    "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp()), "
    "(SELECT clock_us FROM hub_state WHERE id = 1)"
)
_POSITION = text("SELECT pg_last_wal_replay_lsn()::text, (SELECT clock_us FROM hub_state WHERE id = 1)")


def parse_lsn(lsn: str | None) -> int:
    """A PostgreSQL WAL position (``16/B374D848``) as a number; 0 for none."""
    if not lsn:
        return 0
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


class ReplicaSession(db.ReadSession):
    """A read session on a replica: each statement sees the replica as of its own start."""


@dataclass
class Replica:
    """One replica and what its last check found."""

    name: str  # the URL without its password: safe for logs and metrics
    engine: Engine
    reads: sessionmaker[ReplicaSession]
    units: sessionmaker[ReplicaSession]
    usable: bool = False
    reason: str = "not checked yet"
    clock_us: int = 0  # the hub clock it had replayed at the last look: only ever grows
    replay_lsn: int = 0
    lag_s: float | None = None

    def saw(self, lsn: str | None, clock_us: int | None) -> None:
        # Lower bounds: a replica's replay position only moves forward.
        self.replay_lsn = max(self.replay_lsn, parse_lsn(lsn))
        self.clock_us = max(self.clock_us, clock_us or 0)


@dataclass
class ReplicaSet:
    """The configured replicas of one hub, their health, and the choice of one for a read."""

    primary: Engine
    replicas: list[Replica]
    max_lag_s: float
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _monitor_pid: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: dict[str, Any], primary: Engine) -> ReplicaSet | None:
        """The replicas ``read_database_urls`` names, or None when it names none."""
        urls = settings.get("read_database_urls") or []  # hand-built settings (tools, tests) may leave it out
        if not urls:
            return None
        replicas = [_replica(url) for url in urls]
        return cls(primary, replicas, float(settings["max_replica_lag_seconds"]))

    def choose(self, *, position: int | None = None, lsn: int | None = None) -> Replica | None:
        """A replica that may answer a read from ``position`` (hub clock) and ``lsn`` (WAL); None: the primary."""
        self._ensure_monitor()
        usable = [r for r in self.replicas if r.usable]
        if not usable:
            return None
        start = next(self._turn) % len(usable)
        for replica in usable[start:] + usable[:start]:
            if self._reaches(replica, position, lsn):
                return replica
        return None

    def failed(self, replica: Replica, error: BaseException) -> None:
        """Skip ``replica`` until its next check succeeds (a read on it failed)."""
        if replica.usable:
            log.warning("replica %s failed during a read, skipped until it recovers: %s", replica.name, _short(error))
        replica.usable, replica.reason = False, f"failed: {_short(error)}"

    def check(self) -> None:
        """Check every replica once: up, in recovery, and within the lag allowed."""
        try:
            with self.primary.connect() as conn:
                primary_lsn = conn.execute(_PRIMARY).scalar_one()
        except DBAPIError as error:
            # Without the primary's position no lag can be judged; replicas keep their last verdict.
            log.warning("replica check: the primary did not answer: %s", _short(error))
            return
        for replica in self.replicas:
            self._check_one(replica, parse_lsn(primary_lsn))

    def _check_one(self, replica: Replica, primary_lsn: int) -> None:
        try:
            with replica.engine.connect() as conn:
                recovering, lsn, age, clock_us = conn.execute(_CHECK).one()
        except DBAPIError as error:
            self._verdict(replica, False, f"down: {_short(error)}")
            return
        if not recovering:
            # Promoted or not a replica at all: its data may already differ from the primary's.
            self._verdict(replica, False, "not in recovery: not a replica of the primary")
            return
        replica.saw(lsn, clock_us)
        replica.lag_s = 0.0 if parse_lsn(lsn) >= primary_lsn else (float(age) if age is not None else None)
        if replica.lag_s is None or replica.lag_s > self.max_lag_s:
            lag = "unknown" if replica.lag_s is None else f"{replica.lag_s:.1f} s"
            self._verdict(replica, False, f"lagging {lag} (max_replica_lag_seconds {self.max_lag_s:g})")
            return
        self._verdict(replica, True, "ok")

    def _verdict(self, replica: Replica, usable: bool, reason: str) -> None:
        if usable != replica.usable:
            level = logging.INFO if usable else logging.WARNING
            log.log(level, "replica %s %s: %s", replica.name, "in use" if usable else "skipped", reason)
        replica.usable, replica.reason = usable, reason

    def _reaches(self, replica: Replica, position: int | None, lsn: int | None) -> bool:
        if (position is None or replica.clock_us >= position) and (lsn is None or replica.replay_lsn >= lsn):
            return True
        try:  # the last check is older than the position asked for: look again
            with replica.engine.connect() as conn:
                replica.saw(*conn.execute(_POSITION).one())
        except DBAPIError as error:
            self.failed(replica, error)
            return False
        return (position is None or replica.clock_us >= position) and (lsn is None or replica.replay_lsn >= lsn)

    def _ensure_monitor(self) -> None:
        """Start this process's checking thread (again after a fork: threads do not survive one)."""
        if self._monitor_pid == os.getpid():
            return
        with self._lock:
            if self._monitor_pid == os.getpid():
                return
            self._monitor_pid = os.getpid()
            self._stop = threading.Event()
            self.check()  # the first verdict before the first read
            threading.Thread(target=self._watch, args=(self._stop,), name="cti-hub-replicas", daemon=True).start()

    def _watch(self, stop: threading.Event) -> None:
        while not stop.wait(CHECK_EVERY_S):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the thread must outlive any one failed check
                log.exception("replica check failed")

    def close(self) -> None:
        """Stop checking and close the replicas' connections."""
        self._stop.set()
        self._monitor_pid = 0
        for replica in self.replicas:
            replica.engine.dispose()


def read(
    replicas: ReplicaSet | None,
    primary: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    position: int | None = None,
) -> T:
    """Run read-only ``work`` on a replica that may answer it, otherwise (or if that replica fails) the primary."""
    replica = replicas.choose(position=position) if replicas is not None else None
    if replica is not None and replicas is not None:
        try:
            with replica.reads() as session:
                result = work(session)
            READS.labels("replica").inc()
            return result
        except OperationalError as error:  # connection lost, server shutting down, a recovery conflict
            replicas.failed(replica, error)
    with primary() as session:
        result = work(session)
    if replicas is not None:
        READS.labels("primary").inc()
    return result


@contextmanager
def unit(replicas: ReplicaSet | None, primary: sessionmaker[Session], *, lsn: int | None = None) -> Iterator[Session]:
    """A read-only transaction on a replica that has replayed ``lsn`` (the panel), otherwise on the primary."""
    replica = replicas.choose(lsn=lsn) if replicas is not None else None
    factory: sessionmaker[Any] = replica.units if replica is not None else primary
    if replicas is not None:
        READS.labels("replica" if replica is not None else "primary").inc()
    with db.transaction(factory) as session:
        yield session


def primary_lsn(session: Session) -> int:
    """The primary's current WAL position, read in ``session`` (after a change it includes that change)."""
    return parse_lsn(session.execute(_PRIMARY).scalar_one())


def _replica(url: str) -> Replica:
    # A replica that is down or stuck must cost a read seconds at most, never the whole request.
    engine = db.make_engine(
        url, connect_timeout=CONNECT_TIMEOUT_S, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"
    )
    name = engine.url.render_as_string(hide_password=True)
    reads = sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"), class_=ReplicaSession, expire_on_commit=False
    )
    units = sessionmaker(engine, class_=ReplicaSession, expire_on_commit=False)
    return Replica(name, engine, reads, units)


def _short(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:200]
