"""Per-API-key request rate limits: a fixed one-minute window.

Every authenticated TAXII request counts against its key. Past ``rate_limit_per_minute``
requests in the current minute the caller gets ``429 Too Many Requests`` with
``Retry-After`` (seconds until the window ends). ``0`` turns the limit off.

Without ``redis_url`` the counters live in process memory, so checking costs a dictionary
lookup and no round trip; with N worker processes (gunicorn ``--workers``) or several hosts
behind a load balancer, a key can then make up to N times the limit per minute. With
``redis_url`` every process of every host counts in the same Redis (one pipelined INCR and
EXPIRE per request, about 0.1 ms), so the limit holds for the whole hub. Redis unreachable: the
request is let through and a warning is logged (at most once a minute per process), since
refusing every partner because a counter is down would stop the sharing the limit protects.
Failed logins are limited separately, per client address and in the database (``hub.auth``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis
from flask import Flask

from hub.errors import TooManyRequests

WINDOW_SECONDS = 60
_EXTENSION = "cti_hub_ratelimit"
REDIS_PREFIX = "cti-hub:rate:"
REDIS_TIMEOUT_SECONDS = 0.25  # a counter slower than this lets the request through rather than hold it

log = logging.getLogger(__name__)


class Limiter(Protocol):
    per_minute: int

    def hit(self, key: str) -> int: ...


def _retry_after(window: int, now: float) -> int:
    return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))


class RateLimiter:
    """Fixed-window request counters per key, safe across threads of one process."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._current = -1

    def hit(self, key: str) -> int:
        """Count one request for ``key``; return 0 when allowed, else the seconds until it may retry."""
        if self.per_minute <= 0:
            return 0
        now = self.clock()
        window = int(now // WINDOW_SECONDS)
        with self._lock:
            if window != self._current:
                # Once per window: drop the counters of keys that stayed quiet, so memory follows active keys.
                self._windows = {k: v for k, v in self._windows.items() if v[0] == window}
                self._current = window
            start, count = self._windows.get(key, (window, 0))
            if start != window:
                count = 0
            count += 1
            self._windows[key] = (window, count)
        if count <= self.per_minute:
            return 0
        return _retry_after(window, now)


class SharedRateLimiter:
    """Fixed-window request counters per key in Redis, shared by every process that uses the same Redis."""

    def __init__(self, per_minute: int, url: str, clock: Callable[[], float] = time.time) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._redis = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._warned = -1

    def hit(self, key: str) -> int:
        """Count one request for ``key``; return 0 when allowed (or Redis is unreachable), else the wait."""
        if self.per_minute <= 0:
            return 0
        now = self.clock()  # wall-clock time: every host must agree on the window
        window = int(now // WINDOW_SECONDS)
        name = f"{REDIS_PREFIX}{key}:{window}"
        try:
            pipe = self._redis.pipeline(transaction=False)
            pipe.incr(name)
            pipe.expire(name, 2 * WINDOW_SECONDS)
            count = int(pipe.execute()[0])
        except redis.RedisError as error:
            if window != self._warned:
                self._warned = window
                log.warning("rate limit counters unreachable, requests are not limited: %s", error)
            return 0
        if count <= self.per_minute:
            return 0
        return _retry_after(window, now)


def limiter(app: Flask) -> Limiter:
    """Return ``app``'s limiter, created from its settings on first use."""
    found = app.extensions.get(_EXTENSION)
    if found is None:
        settings = app.config["HUB"]
        per_minute = settings["rate_limit_per_minute"]
        made: Limiter = (
            SharedRateLimiter(per_minute, settings["redis_url"]) if settings["redis_url"] else RateLimiter(per_minute)
        )
        found = app.extensions.setdefault(_EXTENSION, made)
    return found


def check(app: Flask, key_id: str) -> None:
    """Count a request made with API key ``key_id``; raise TooManyRequests past the limit."""
    retry = limiter(app).hit(key_id)
    if retry:
        raise TooManyRequests(
            f"rate limit of {limiter(app).per_minute} requests per minute exceeded for this "
            f"API key; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
