"""Authentication edge cases: suspended partners, dead keys, source limits, proxy spoofing, scheme mix-ups."""

from __future__ import annotations

import base64
import time

import pytest
from sqlalchemy import select, update

from hub import accounts
from hub import models as m
from hub.store import clock, snapshots
from tests import factories as f
from tests.security.probes import basic, bearer


def get(app, headers: dict, path: str = "/taxii2/", remote: str = "127.0.0.1"):  # type: ignore[no-untyped-def]
    return app.test_client().get(path, headers={"Accept": f.TAXII, **headers}, environ_base={"REMOTE_ADDR": remote})


def assert_401(response) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_data()
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.headers["Content-Type"] == f.TAXII


def key_row(world, key_id: str):  # type: ignore[no-untyped-def]
    return select(m.ApiKey).where(m.ApiKey.key_id == key_id)


def test_a_valid_key_works_in_every_accepted_form(world):
    secret = world.keys["krcert"]
    with world.hub.session(write=False) as s:
        key_id = s.scalars(select(m.ApiKey.key_id).join(m.Partner).where(m.Partner.slug == "krcert")).first()
    for headers in (
        bearer(secret),
        {"Authorization": f"Token {secret}"},
        {"Authorization": f"bearer  {secret} "},
        basic("krcert", secret),
        basic(key_id, secret),
    ):
        assert get(world.app, headers).status_code == 200, headers


def test_suspended_partner_is_refused(world):
    secret = f.key_for(world.hub, "thaicert")
    assert_401(get(world.app, bearer(secret)))


def test_suspending_a_partner_takes_effect_on_the_next_request(world):
    secret = world.new_partner("idcert")
    assert get(world.app, bearer(secret)).status_code == 200
    with world.hub.session() as s:
        s.execute(update(m.Partner).where(m.Partner.slug == "idcert").values(active=False))
        snapshots.bump_rules(s)
    assert_401(get(world.app, bearer(secret), world.url("shared")))


def test_revoked_key_is_refused(world):
    with world.hub.session() as s:
        key_id, secret = accounts.create_key(s, world.hub.pepper, "cisa")
    assert get(world.app, bearer(secret)).status_code == 200
    with world.hub.session() as s:
        accounts.revoke_key(s, key_id)
    assert_401(get(world.app, bearer(secret)))
    assert_401(get(world.app, basic(key_id, secret)))


def test_expired_key_is_refused(world):
    with world.hub.session() as s:
        key_id, secret = accounts.create_key(s, world.hub.pepper, "cisa", expires_days=30)
    assert get(world.app, bearer(secret)).status_code == 200
    with world.hub.session() as s:
        s.execute(update(m.ApiKey).where(m.ApiKey.key_id == key_id).values(expires_us=clock.now_us() - 1))
    assert_401(get(world.app, bearer(secret)))


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Digest username=krcert"},
        {"Authorization": "chub_"},
        {"Authorization": "Negotiate abc"},
    ],
    ids=["bearer-empty", "bearer-space", "basic-empty", "basic-garbage", "digest", "bare", "negotiate"],
)
def test_malformed_authorization_is_a_401(world, headers):
    assert_401(get(world.app, headers))


def test_basic_and_bearer_mix_ups(world):
    secret = world.keys["krcert"]
    assert_401(get(world.app, bearer(f"krcert:{secret}")))
    assert_401(get(world.app, {"Authorization": "Bearer " + base64.b64encode(f"krcert:{secret}".encode()).decode()}))
    assert_401(get(world.app, {"Authorization": f"Basic {secret}"}))
    assert_401(get(world.app, basic("cisa", secret)))  # another partner's name with krcert's key
    assert_401(get(world.app, basic("krcert", "")))  # empty password
    assert_401(get(world.app, basic("", "")))
    assert_401(get(world.app, basic(secret, "")))  # key sent as the user name
    assert_401(get(world.app, basic("krcert", world.keys["cisa"])))
    assert_401(get(world.app, basic("krcert", secret + "x")))
    assert_401(get(world.app, basic("krcert", secret.upper())))


def test_non_utf8_credentials_are_a_401(world):
    assert_401(get(world.app, basic(b"\xff\xfe", world.keys["krcert"])))
    assert_401(get(world.app, basic(b"krcert", b"\xc3\x28")))


def test_huge_authorization_header_is_refused_quickly(world):
    start = time.perf_counter()
    for header in (
        "Bearer " + "A" * 1_000_000,
        "Basic " + base64.b64encode(b"u" * 500_000 + b":" + b"p" * 500_000).decode(),
    ):
        assert_401(get(world.app, {"Authorization": header}))
    assert time.perf_counter() - start < 5


def test_failed_login_audit_does_not_store_the_secret(world):
    attempt = "chub_not-a-real-key-but-secret-looking"
    assert_401(get(world.app, basic("krcert", attempt)))
    with world.hub.session(write=False) as s:
        events = s.scalars(select(m.AuditEvent).where(m.AuditEvent.action == "login.failed")).all()
    assert events
    assert all(attempt not in (e.actor + e.target + e.detail + e.source) for e in events)


def test_control_characters_in_basic_user_are_a_clean_401(world):
    assert_401(get(world.app, basic(b"kr\r\nFORGED login.ok\x00cert", "chub_wrong")))
    with world.hub.session(write=False) as s:
        actors = s.scalars(select(m.AuditEvent.actor).where(m.AuditEvent.action == "login.failed")).all()
    assert actors and not any(ch in actor for actor in actors for ch in "\r\n\x00")


def test_failed_logins_are_limited_per_address_and_x_forwarded_for_does_not_reset_it(world):
    app, peer = world.make_app(login_failure_limit=5), "192.0.2.201"
    for n in range(5):
        assert_401(get(app, {**bearer(f"chub_wrong{n}"), "X-Forwarded-For": f"198.51.100.{n}"}, remote=peer))
    limited = get(app, {**bearer("chub_wrong"), "X-Forwarded-For": "198.51.100.77"}, remote=peer)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert get(app, bearer(world.keys["krcert"]), remote=peer).status_code == 200  # a valid key is still served
    assert_401(get(app, bearer("chub_wrong"), remote="192.0.2.202"))  # other addresses are not locked out


# --------------------------------------------------------------------- CIDR limits and proxies


@pytest.fixture
def cidr_key(world) -> str:
    return f.key_for(world.hub, "krcert", cidrs="10.0.0.0/8, 2001:db8::/32")


def test_cidr_limited_key_from_outside_is_refused(world, cidr_key):
    assert_401(get(world.app, bearer(cidr_key)))
    assert get(world.app, bearer(cidr_key), remote="10.1.2.3").status_code == 200
    assert get(world.app, bearer(cidr_key), remote="2001:db8::5").status_code == 200
    assert_401(get(world.app, bearer(cidr_key), remote="11.0.0.1"))


@pytest.mark.parametrize("spoof", ["10.1.2.3", "10.1.2.3, 10.1.2.4", "2001:db8::1"])
def test_x_forwarded_for_is_ignored_without_trusted_proxies(world, cidr_key, spoof):
    assert world.hub.settings["trusted_proxies"] == 0
    headers = {**bearer(cidr_key), "X-Forwarded-For": spoof, "X-Real-IP": "10.1.2.3", "Forwarded": "for=10.1.2.3"}
    assert_401(get(world.app, headers, remote="192.0.2.1"))


def test_with_one_trusted_proxy_the_last_hop_counts(world, cidr_key):
    app = world.make_app(trusted_proxies=1)
    proxy = "192.0.2.1"
    assert get(app, {**bearer(cidr_key), "X-Forwarded-For": "10.1.2.3"}, remote=proxy).status_code == 200
    # The client prepends a spoofed address; the proxy appends the real one, which is what is checked.
    assert_401(get(app, {**bearer(cidr_key), "X-Forwarded-For": "10.1.2.3, 203.0.113.9"}, remote=proxy))
    assert get(app, {**bearer(cidr_key), "X-Forwarded-For": "203.0.113.9, 10.1.2.3"}, remote=proxy).status_code == 200
    assert_401(get(app, {**bearer(cidr_key), "X-Forwarded-For": "not-an-address"}, remote=proxy))
    assert_401(get(app, bearer(cidr_key), remote=proxy))


def test_keys_never_reach_the_logs(world, caplog):
    import logging

    secret = world.keys["krcert"]
    with caplog.at_level(logging.DEBUG):
        assert get(world.app, bearer(secret), world.url("shared")).status_code == 200
        assert_401(get(world.app, basic("krcert", secret + "x")))
        assert_401(get(world.app, bearer(secret[:-1])))
    assert caplog.records
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert secret[5:20] not in text and "Authorization" not in text
