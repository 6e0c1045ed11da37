"""Scheduled sync of the saved remote TAXII sources, inside the running server.

With ``feeds_sync_interval_seconds`` above 0, every server process runs one daemon thread that wakes
each interval and tries to take the ``feeds-sync`` lease: a row of ``feed_leases`` naming a holder and
an expiry, taken in one short write transaction. Only the holder syncs. It renews the lease after
every page and every source, and on release records when the sync is next due, so however many
workers and hosts share the database, the sources are synced once per interval and never by two
processes at once. A holder that dies keeps the lease only until it expires (``LEASE_SECONDS``).

Each source's result is one JSON log line (logger ``hub.feeds``, on standard error) and a count in
``cti_hub_feed_syncs_total{source, outcome}``. A failing source is retried at the next interval
from its saved cursor; no failure stops the thread or the worker. Log lines carry source names and
error messages with any ``user:password@`` removed from URLs, never credentials.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable

import orjson
from flask import Flask
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from feeds import taxii_source
from hub import models as m
from hub.errors import ConfigError, HubError
from hub.ops import FEED_SYNCS
from hub.runtime import Hub
from hub.store import clock

LEASE = "feeds-sync"
LEASE_SECONDS = 300
LOG = logging.getLogger("hub.feeds")
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)


class LeaseLost(Exception):
    """Another process took the lease (this one stalled past the expiry): stop syncing at once."""


# --------------------------------------------------------------------- the lease


def take_lease(hub: Hub, name: str, holder: str, now_us: int, ttl_us: int) -> bool:
    """Take the lease ``name`` for ``holder`` if it is due and free or expired; tell whether it was taken.

    A holder cannot take it twice: while held, only ``renew_lease`` extends it.
    """
    try:
        with hub.session() as session:
            row = session.get(m.FeedLease, name, with_for_update=True)
            if row is None:
                session.add(m.FeedLease(name=name, holder=holder, expires_us=now_us + ttl_us, next_run_us=0))
                return True
            if row.next_run_us > now_us or (row.holder and row.expires_us > now_us):
                return False
            row.holder, row.expires_us = holder, now_us + ttl_us
            return True
    except IntegrityError:  # another process created the row first: it holds the lease
        return False


def renew_lease(hub: Hub, name: str, holder: str, now_us: int, ttl_us: int) -> bool:
    """Push the expiry of a lease ``holder`` still holds; False when it no longer holds it."""
    with hub.session() as session:
        result = session.execute(
            update(m.FeedLease)
            .where(m.FeedLease.name == name, m.FeedLease.holder == holder)
            .values(expires_us=now_us + ttl_us)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def release_lease(hub: Hub, name: str, holder: str, next_run_us: int) -> None:
    """Give the lease back and record when the job is next due."""
    with hub.session() as session:
        session.execute(
            update(m.FeedLease)
            .where(m.FeedLease.name == name, m.FeedLease.holder == holder)
            .values(holder="", expires_us=0, next_run_us=next_run_us)
        )


# --------------------------------------------------------------------- the scheduler


class Scheduler:
    """Sync every saved remote source each ``interval`` seconds, under the database lease."""

    def __init__(
        self, hub: Hub, interval: float, *, holder: str | None = None, clock: Callable[[], int] = clock.now_us
    ) -> None:
        self.hub, self.interval, self.clock = hub, interval, clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run ``tick`` now and then every interval, in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="cti-hub-feed-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread after the tick in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval)

    def tick(self) -> bool:
        """Sync every source if this process takes the lease; tell whether it did. Never raises."""
        ttl_us = LEASE_SECONDS * 1_000_000
        try:
            if not take_lease(self.hub, LEASE, self.holder, self.clock(), ttl_us):
                return False
        except Exception as exc:  # noqa: BLE001 - a database outage must not kill the thread
            _log(logging.ERROR, event="feeds.sync.lease", outcome="failed", error=_describe(exc))
            return False
        try:
            self.sync_all()
        except LeaseLost:
            _log(logging.WARNING, event="feeds.sync.lease", outcome="lost", holder=self.holder)
        except Exception as exc:  # noqa: BLE001 - e.g. the database went away between sources
            FEED_SYNCS.labels("", "failed").inc()
            _log(logging.ERROR, event="feeds.sync", outcome="failed", error=_describe(exc))
        finally:
            try:
                release_lease(self.hub, LEASE, self.holder, self.clock() + int(self.interval * 1_000_000))
            except Exception as exc:  # noqa: BLE001 - the lease then simply expires
                _log(logging.ERROR, event="feeds.sync.lease", outcome="release failed", error=_describe(exc))
        return True

    def sync_all(self) -> None:
        """Sync each saved source in turn; a failing source is logged and counted, the others still run."""
        for row in taxii_source.saved_sources(self.hub):
            self._renew()
            try:
                outcome = taxii_source.sync_saved(self.hub, row, lambda _n: self._renew())
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - one broken source must not stop the others
                FEED_SYNCS.labels(row.name, "failed").inc()
                _log(logging.ERROR, event="feeds.sync", source=row.name, outcome="failed", error=_describe(exc))
            else:
                FEED_SYNCS.labels(row.name, "ok").inc()
                _log(logging.INFO, event="feeds.sync", source=row.name, outcome="ok", summary=outcome.summary())

    def _renew(self) -> None:
        if not renew_lease(self.hub, LEASE, self.holder, self.clock(), LEASE_SECONDS * 1_000_000):
            raise LeaseLost(self.holder)


def _describe(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, HubError) else f"{type(exc).__name__}: {exc}"
    return _USERINFO.sub(r"\1", text.splitlines()[0] if text else type(exc).__name__)[:500]


def _log(level: int, **fields: object) -> None:
    if not any(getattr(h, "hub_feeds", False) for h in LOG.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.hub_feeds = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOG.addHandler(handler)
        LOG.setLevel(logging.INFO)
        LOG.propagate = False
    line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": logging.getLevelName(level), **fields}
    LOG.log(level, orjson.dumps(line).decode())


def init_app(app: Flask) -> None:
    """Start the scheduler when ``feeds_sync_interval_seconds`` is set; keep it in ``app.extensions``."""
    hub: Hub = app.extensions["cti_hub"]
    interval = hub.settings["feeds_sync_interval_seconds"]
    if interval < 0:
        raise ConfigError(f"setting 'feeds_sync_interval_seconds' must be 0 (off) or more, got {interval}")
    if interval:
        scheduler = Scheduler(hub, interval)
        app.extensions["cti_hub_feed_scheduler"] = scheduler
        scheduler.start()
