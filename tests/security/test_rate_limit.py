"""Per-key request rate limits: 429 with Retry-After past the limit, per key, and a fresh window after."""

from __future__ import annotations

from hub import ratelimit
from tests import factories as f


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
