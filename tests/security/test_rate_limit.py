"""Per-key request rate limits: 429 with Retry-After past the limit, per key, and a fresh window after."""

from __future__ import annotations

import logging
import time
import uuid

import pytest

from hub import config as hub_config
from hub import ratelimit
from hub.errors import ConfigError
from tests import factories as f
from tests import live


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_limiter_counts_per_key_in_fixed_windows():
    clock = Clock(120.0)
    limiter = ratelimit.RateLimiter(3, clock)
    assert [limiter.hit("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.hit("a") == 60
    assert limiter.hit("b") == 0
    clock.now = 150.2
    assert limiter.hit("a") == 30
    clock.now = 180.0
    assert limiter.hit("a") == 0


def test_a_zero_limit_never_limits():
    limiter = ratelimit.RateLimiter(0)
    assert all(limiter.hit("a") == 0 for _ in range(1000))


def test_old_windows_are_forgotten_when_a_new_one_starts():
    clock = Clock(0.0)
    limiter = ratelimit.RateLimiter(1, clock)
    for n in range(1000):
        limiter.hit(str(n))
    clock.now = 60.0
    limiter.hit("fresh")
    assert len(limiter._windows) == 1


def test_the_api_answers_429_with_retry_after_past_the_limit(world):
    app = world.make_app(rate_limit_per_minute=5)
    kr = f.Client(app.test_client(), world.keys["krcert"])
    assert all(kr.get(world.url("shared")).status_code == 200 for _ in range(5))
    limited = kr.get(world.url("shared"))
    assert limited.status_code == 429
    assert limited.headers["Content-Type"] == f.TAXII
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.get_json()["http_status"] == "429" and "rate limit" in limited.get_json()["description"]
    assert kr.post(world.url("shared"), [f.indicator(980)]).status_code == 429
    # Another partner's key has its own budget; the limited key's partner keeps nothing extra.
    assert f.Client(app.test_client(), world.keys["cisa"]).get(world.url("shared")).status_code == 200


def test_the_limit_is_per_key_not_per_partner(world):
    app = world.make_app(rate_limit_per_minute=2)
    first = f.Client(app.test_client(), world.keys["krcert"])
    second = f.Client(app.test_client(), f.key_for(world.hub, "krcert"))
    assert [first.get("/taxii2/").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/taxii2/").status_code == 200


def test_failed_logins_do_not_spend_a_keys_budget(world):
    app = world.make_app(rate_limit_per_minute=2)
    anonymous = f.Client(app.test_client(), "chub_wrong")
    assert all(anonymous.get("/taxii2/").status_code == 401 for _ in range(5))
    kr = f.Client(app.test_client(), world.keys["krcert"])
    assert [kr.get("/taxii2/").status_code for _ in range(3)] == [200, 200, 429]


# --------------------------------------------------------------------- shared across processes (Redis)

REDIS = "redis://127.0.0.1:6379/0"


def _clear_of_window_end() -> None:
    """Wait for a fresh minute when this one ends within 3 s: the tests below must fit in one window."""
    left = ratelimit.WINDOW_SECONDS - time.time() % ratelimit.WINDOW_SECONDS
    if left < 3:
        time.sleep(left + 0.05)


def test_shared_limiter_counts_per_key_in_fixed_windows():
    clock = Clock(1_800_000_020.0)
    key = f"test-{uuid.uuid4()}"
    one, other = (ratelimit.SharedRateLimiter(3, REDIS, clock) for _ in range(2))
    assert [one.hit(key), other.hit(key), one.hit(key)] == [0, 0, 0]
    assert other.hit(key) == 40 and one.hit(key) == 40
    assert one.hit(f"{key}-b") == 0
    clock.now += 40.0
    assert one.hit(key) == 0


def test_processes_sharing_a_redis_share_each_key_budget(world):
    _clear_of_window_end()
    apps = [world.make_app(rate_limit_per_minute=4, redis_url=REDIS) for _ in range(2)]
    first, second = (f.Client(app.test_client(), world.keys["krcert"]) for app in apps)
    assert [c.get(world.url("shared")).status_code for c in (first, second, first, second)] == [200] * 4
    assert first.get(world.url("shared")).status_code == 429
    limited = second.get(world.url("shared"))
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    # Each key still has its own budget across the processes.
    assert f.Client(apps[1].test_client(), world.keys["cisa"]).get(world.url("shared")).status_code == 200


def test_without_redis_each_process_counts_its_own(world):
    _clear_of_window_end()
    apps = [world.make_app(rate_limit_per_minute=2) for _ in range(2)]
    clients = [f.Client(app.test_client(), world.keys["krcert"]) for app in apps]
    assert [c.get(world.url("shared")).status_code for c in clients * 2] == [200] * 4
    assert clients[0].get(world.url("shared")).status_code == 429


def test_unreachable_redis_lets_requests_through_and_warns_once(world, caplog):
    app = world.make_app(rate_limit_per_minute=1, redis_url=f"redis://127.0.0.1:{live.free_port()}/0")
    kr = f.Client(app.test_client(), world.keys["krcert"])
    with caplog.at_level(logging.WARNING, logger="hub.ratelimit"):
        assert [kr.get(world.url("shared")).status_code for _ in range(3)] == [200] * 3
    warnings = [r for r in caplog.records if "rate limit counters unreachable" in r.getMessage()]
    assert len(warnings) == 1


def test_a_redis_url_of_another_scheme_is_refused_naming_the_setting():
    with pytest.raises(ConfigError, match="redis_url"):
        hub_config.load(overrides={"redis_url": "http://127.0.0.1:6379"})
