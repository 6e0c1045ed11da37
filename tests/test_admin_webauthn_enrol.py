"""A security key as the second factor chosen at a login's forced enrolment, through Flask's test client.

With ``admin_mfa_required`` on and ``public_url`` set, an account without a second factor is sent
after its password to the enrolment page, which offers a security key beside the authenticator app
(``/admin/login/enrol/key``). Covered: the key completes the login and is asked for at the next one;
the page opens only at a pending enrolment step; a refused answer is audited and counts toward the
lockout; a challenge works once; without ``public_url`` the page is not offered.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from hub import models as m
from hub import passkeys
from hub.admin import signin
from tests.panel import PASSWORD, audit_events, code_of, csrf_of, enrol_totp, login, second_step
from tests.webauthn_device import SoftKey, options_of
from tests.worlds import panel_world

PUBLIC_URL = "http://localhost"
PAGE = "/admin/login/enrol/key"


@pytest.fixture
def app(make_app):
    return make_app(admin_mfa_required=True, public_url=PUBLIC_URL)


@pytest.fixture
def world(hub):
    return panel_world(hub)


def enrol_step(client, username: str = "alice", next_page: str = ""):
    """Log in with the password of an account without a second factor; return the key enrolment page."""
    url = "/admin/login" + (f"?next={next_page}" if next_page else "")
    token = csrf_of(client.get(url))
    r = client.post(url, data={"csrf_token": token, "username": username, "password": PASSWORD})
    assert r.headers["Location"] == "/admin/login/enrol"
    offer = client.get("/admin/login/enrol").get_data(as_text=True)
    assert f'href="{PAGE}"' in offer
    page = client.get(PAGE)
    assert page.status_code == 200, page.get_data(as_text=True)
    return page


def submit(client, page, credential: str, name: str = "YubiKey 5"):
    return client.post(PAGE, data={"csrf_token": csrf_of(page), "credential": credential, "name": name})


def create_options(page) -> str:
    return options_of(page.get_data(as_text=True), "create")


def stored_keys(hub, username: str = "alice") -> list[m.AdminWebauthnCredential]:
    with hub.session(write=False) as s:
        user = s.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one()
        rows = passkeys.keys(s, user.id)
        s.expunge_all()
        return rows


def reasons(hub) -> list[str]:
    return [json.loads(e.detail)["reason"] for e in audit_events(hub, "admin.passkey_refused")]


def failures(hub, username: str = "alice") -> int | None:
    with hub.session(write=False) as s:
        return s.scalar(select(m.LoginFailure.count).where(m.LoginFailure.source == f"admin-user:{username}"))


def test_a_key_enrolled_at_the_forced_step_completes_the_login_and_the_next_login_asks_for_it(app, world, hub):
    key = SoftKey()
    client = app.test_client()
    page = enrol_step(client, next_page="/admin/partners/")
    body = page.get_data(as_text=True)
    assert "requires a second factor" in body and 'name="name"' in body and "<script>" not in body
    options = json.loads(create_options(page))
    assert options["rp"]["id"] == "localhost" and options["user"]["name"] == "alice"
    assert options["excludeCredentials"] == []
    r = submit(client, page, key.create(create_options(page)))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/partners/", r.get_data(as_text=True)
    assert client.get("/admin/partners/").status_code == 200  # logged in
    [stored] = stored_keys(hub)
    assert stored.credential_id == key.credential_id and stored.name == "YubiKey 5"
    [enrolled] = audit_events(hub, "admin.passkey_enrolled")
    assert json.loads(enrolled.detail)["via"] == "panel" and enrolled.target == "alice"
    [done] = [e for e in audit_events(hub, "admin.login") if e.target == "alice"]
    assert json.loads(done.detail)["second_factor"] == "security-key"
    assert json.loads(audit_events(hub, "admin.login_password")[0].detail) == {"next": "enrol"}
    # The route is for the pending enrolment only: a logged-in session is sent to the dashboard.
    assert client.get(PAGE).headers["Location"] == "/admin/"
    # The next login asks for the key, and the key opens the panel.
    other = app.test_client()
    assert login(other).headers["Location"] == "/admin/login/key"
    page = other.get("/admin/login/key")
    credential = key.get(options_of(page.get_data(as_text=True), "get"))
    r = other.post("/admin/login/key", data={"csrf_token": csrf_of(page), "credential": credential})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"


def test_the_page_opens_only_at_a_pending_enrolment_step(app, world, hub):
    anonymous = app.test_client()
    assert anonymous.get(PAGE).headers["Location"].startswith("/admin/login")
    r = anonymous.post(PAGE, data={"credential": "{}"})
    assert r.status_code in (302, 400) and not stored_keys(hub)
    # An account with an authenticator is at the code step: the page sends it back there.
    secret = enrol_totp(hub).secret
    client = app.test_client()
    assert login(client).headers["Location"] == "/admin/login/code"
    assert client.get(PAGE).headers["Location"] == "/admin/login/code"
    r = client.post(PAGE, data={"csrf_token": csrf_of(client.get("/admin/login/code")), "credential": "{}"})
    assert r.headers["Location"] == "/admin/login/code"
    assert second_step(client, code_of(secret)).headers["Location"] == "/admin/"
    assert client.get(PAGE).headers["Location"] == "/admin/"
    assert not stored_keys(hub) and not audit_events(hub, "admin.passkey_refused")


def test_the_post_needs_the_csrf_token_of_the_session(app, world, hub):
    key = SoftKey()
    client = app.test_client()
    page = enrol_step(client)
    r = client.post(PAGE, data={"credential": key.create(create_options(page)), "name": "x"})
    assert r.status_code == 400 and not stored_keys(hub)


def test_a_refused_answer_is_audited_and_counts_toward_the_lockout(app, world, hub):
    key = SoftKey()
    client = app.test_client()
    page = enrol_step(client)
    r = submit(client, page, key.create(create_options(page), origin="http://evil.example"))
    assert r.status_code == 401 and "was refused" in r.get_data(as_text=True)
    assert failures(hub) == 1 and reasons(hub) == ["wrong"] and not stored_keys(hub)
    page = client.get(PAGE)
    r = submit(client, page, "not json")
    assert r.status_code == 401 and "not JSON" in r.get_data(as_text=True)
    assert failures(hub) == 2 and reasons(hub) == ["wrong", "malformed"]
    for _ in range(signin.LOCKOUT_FAILURES - 2):
        page = client.get(PAGE)
        assert submit(client, page, key.create(create_options(page), rp_id="evil.example")).status_code == 401
    page = client.get(PAGE)
    r = submit(client, page, key.create(create_options(page)))
    assert r.status_code == 401 and "Too many failed logins" in r.get_data(as_text=True)
    assert not stored_keys(hub) and audit_events(hub, "admin.login_locked")
    assert not [e for e in audit_events(hub, "admin.login") if e.target == "alice"]


def test_a_challenge_works_once_and_the_page_then_shows_a_new_one(app, world, hub):
    key = SoftKey()
    client = app.test_client()
    page = enrol_step(client)
    stale = key.create(create_options(page))
    fresh = client.get(PAGE)  # replaces the challenge of the first showing
    r = submit(client, fresh, stale)
    assert r.status_code == 401 and "used already" in r.get_data(as_text=True)
    assert reasons(hub) == ["challenge"] and failures(hub) == 1
    retry = r  # the refusal's page carries a new challenge
    r = submit(client, retry, key.create(create_options(retry)))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"
    assert len(stored_keys(hub)) == 1 and failures(hub) is None  # the complete login cleared the account's count


def test_an_account_that_enrolled_meanwhile_must_log_in_again(app, world, hub):
    key = SoftKey()
    client = app.test_client()
    page = enrol_step(client)
    enrol_totp(hub)  # in another tab, or by an administrator on the server
    r = submit(client, page, key.create(create_options(page)))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/login"
    assert not stored_keys(hub) and "second factor already" in client.get("/admin/login").get_data(as_text=True)


def test_without_public_url_the_enrolment_offers_no_key(make_app, world, hub):
    client = make_app(admin_mfa_required=True).test_client()
    assert login(client).headers["Location"] == "/admin/login/enrol"
    assert PAGE not in client.get("/admin/login/enrol").get_data(as_text=True)
    r = client.get(PAGE)
    assert r.headers["Location"] == "/admin/login/enrol"
    assert "need the setting public_url" in client.get("/admin/login/enrol").get_data(as_text=True)
