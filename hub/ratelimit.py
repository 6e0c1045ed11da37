"""Per-API-key request rate limits: a fixed one-minute window, counted in each worker process.

Every authenticated TAXII request counts against its key. Past ``rate_limit_per_minute``
requests in the current minute the caller gets ``429 Too Many Requests`` with
``Retry-After`` (seconds until the window ends). ``0`` turns the limit off.

The counters live in process memory, so checking costs a dictionary lookup and no
database round trip. With N worker processes (gunicorn ``--workers``) or several hosts
behind a load balancer, a key can make up to N times the limit per minute; set the
limit per process accordingly, or enforce a global one at the reverse proxy. Failed
logins are limited separately, per client address and in the database (``hub.auth``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from flask import Flask

from hub.errors import TooManyRequests

WINDOW_SECONDS = 60
_EXTENSION = "cti_hub_ratelimit"


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
        return max(1, int((window + 1) * WINDOW_SECONDS - now + 0.999))


def limiter(app: Flask) -> RateLimiter:
    """Return ``app``'s limiter, created from its settings on first use."""
    found = app.extensions.get(_EXTENSION)
    if found is None:
        found = app.extensions.setdefault(_EXTENSION, RateLimiter(app.config["HUB"]["rate_limit_per_minute"]))
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
