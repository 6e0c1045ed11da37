"""Security keys and passkeys (WebAuthn) as the panel's second factor, through Flask's test client.

A software authenticator (tests/webauthn_device.py: ECDSA P-256, "none" attestation) answers the
options the pages carry. Covered: enrolment after the current password, the key step of a login, a
wrong origin, a wrong relying-party id, a replayed and an expired challenge, a signature counter that
goes backwards, refusals counting toward the lockout, removal, the audit trail and the CLI.
"""

from __future__ import annotations

import json
import types
import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import select, update

from hub import models as m
from hub import passkeys
from hub.admin import signin
from hub.cli import main
from hub.cli.ops import verify_chain
from hub.store import clock
from tests import factories as f
from tests.panel import PASSWORD, audit_events, code_of, csrf_of, enrol_totp, login, second_step
from tests.webauthn_device import SoftKey, options_of
from tests.worlds import panel_world

PUBLIC_URL = "http://localhost"


@pytest.fixture
def app(make_app):
    return make_app(public_url=PUBLIC_URL)


@pytest.fixture
def world(hub):
    return panel_world(hub)


def logged_in(app, username: str = "alice"):
    client = app.test_client()
    assert login(client, username).headers["Location"] == "/admin/"
    return client


def start_enrolment(client, name: str = "YubiKey 5", password: str = PASSWORD):
    token = csrf_of(client.get("/admin/account"))
    return client.post("/admin/account/keys", data={"csrf_token": token, "key-name": name, "key-password": password})


def finish_enrolment(client, page, credential: str):
    return client.post(
        "/admin/account/keys/confirm",
        data={"csrf_token": csrf_of(page), "credential": credential, "name": "YubiKey 5"},
    )


def enrol(app, key: SoftKey, username: str = "alice") -> None:
    client = logged_in(app, username)
    page = start_enrolment(client)
    assert page.status_code == 200, page.get_data(as_text=True)
    r = finish_enrolment(client, page, key.create(options_of(page.get_data(as_text=True), "create")))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/account", r.get_data(as_text=True)


def key_step(client, username: str = "alice"):
    """Log in with the password; return the key page (its options carry a new challenge)."""
    assert login(client, username).headers["Location"] == "/admin/login/key"
    page = client.get("/admin/login/key")
    assert page.status_code == 200
    return page


def answer(client, page, credential: str):
    return client.post("/admin/login/key", data={"csrf_token": csrf_of(page), "credential": credential})


def login_options(page) -> str:
    return options_of(page.get_data(as_text=True), "get")


def refused(r, text: str) -> bool:
    return r.status_code == 401 and text in r.get_data(as_text=True)


def stored_keys(hub, username: str = "alice") -> list[m.AdminWebauthnCredential]:
    with hub.session(write=False) as s:
        user = s.execute(select(m.AdminUser).where(m.AdminUser.username == username)).scalar_one()
        rows = passkeys.keys(s, user.id)
        s.expunge_all()
        return rows


def details(hub, action: str) -> list[dict]:
    return [json.loads(e.detail) for e in audit_events(hub, action)]


def reasons(hub) -> list[str]:
    return [d["reason"] for d in details(hub, "admin.passkey_refused")]


# --------------------------------------------------------------------- enrolment


def test_a_key_is_enrolled_after_the_current_password_and_the_login_then_needs_it(app, world, hub):
    key = SoftKey()
    client = logged_in(app)
    assert "No security key enrolled" in client.get("/admin/account").get_data(as_text=True)
    assert "Wrong password" in start_enrolment(client, password="not the password").get_data(as_text=True)
    assert audit_events(hub, "admin.reauth_failed")
    page = start_enrolment(client)
    options = options_of(page.get_data(as_text=True), "create")
    assert '"rp": {"name": "cti-hub", "id": "localhost"}' in options and '"attestation": "none"' in options
    r = finish_enrolment(client, page, key.create(options))
    assert r.status_code == 302
    account = client.get("/admin/account").get_data(as_text=True)
    assert "YubiKey 5" in account and "never" in account
    [stored] = stored_keys(hub)
    assert stored.credential_id == key.credential_id and stored.sign_count == 0 and stored.name == "YubiKey 5"
    [event] = audit_events(hub, "admin.passkey_enrolled")
    assert event.target == "alice" and json.loads(event.detail)["name"] == "YubiKey 5" and event.source == "127.0.0.1"
    # From now on the password alone no longer opens the panel.
    other = app.test_client()
    assert login(other).headers["Location"] == "/admin/login/key"
    assert other.get("/admin/partners/").headers["Location"] == "/admin/login/key"


def test_a_registration_from_another_origin_or_for_another_rp_id_is_refused(app, world, hub):
    key = SoftKey()
    client = logged_in(app)
    page = start_enrolment(client)
    r = finish_enrolment(
        client, page, key.create(options_of(page.get_data(as_text=True), "create"), origin="http://evil.example")
    )
    assert r.status_code == 400 and "was refused" in r.get_data(as_text=True)
    page = start_enrolment(client)
    r = finish_enrolment(
        client, page, key.create(options_of(page.get_data(as_text=True), "create"), rp_id="evil.example")
    )
    assert r.status_code == 400 and "was refused" in r.get_data(as_text=True)
    assert stored_keys(hub) == [] and not audit_events(hub, "admin.passkey_enrolled")
    assert reasons(hub) == ["wrong", "wrong"]


def test_a_registration_challenge_works_once(app, world, hub):
    key = SoftKey()
    client = logged_in(app)
    page = start_enrolment(client)
    credential = key.create(options_of(page.get_data(as_text=True), "create"))
    assert finish_enrolment(client, page, credential).status_code == 302
    r = finish_enrolment(client, page, credential)
    assert r.status_code == 400 and "used already" in r.get_data(as_text=True)
    assert len(stored_keys(hub)) == 1 and reasons(hub) == ["challenge"]


def test_an_answer_that_is_no_credential_is_a_clear_error(app, world, hub):
    client = logged_in(app)
    page = start_enrolment(client)
    r = finish_enrolment(client, page, "not json")
    assert r.status_code == 400 and "not JSON" in r.get_data(as_text=True)
    r = finish_enrolment(client, page, '{"id": "x"}')
    assert r.status_code == 400 and "not a WebAuthn credential" in r.get_data(as_text=True)


def test_without_public_url_security_keys_are_off(make_app, world, hub):
    app = make_app()
    client = logged_in(app)
    assert "need the setting <code>public_url</code>" in client.get("/admin/account").get_data(as_text=True)
    r = start_enrolment(client)
    assert r.status_code == 400 and "need the setting public_url" in r.get_data(as_text=True)


# --------------------------------------------------------------------- login


def test_password_then_key_logs_in_and_the_counter_is_kept(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    assert client.get("/admin/audit").headers["Location"] == "/admin/login/key"  # nothing opens before the key
    r = answer(client, page, key.get(login_options(page)))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/", r.get_data(as_text=True)
    assert client.get("/admin/partners/").status_code == 200
    [stored] = stored_keys(hub)
    assert stored.sign_count == 1 and stored.last_used_us
    assert details(hub, "admin.passkey_used")[0]["sign_count"] == 1
    assert details(hub, "admin.login")[-1]["second_factor"] == "security-key"


def test_an_account_with_totp_and_a_key_may_use_either(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    enrolment = enrol_totp(hub)
    client = app.test_client()
    assert login(client).headers["Location"] == "/admin/login/code"
    assert 'href="/admin/login/key"' in client.get("/admin/login/code").get_data(as_text=True)
    page = client.get("/admin/login/key")
    assert 'href="/admin/login/code"' in page.get_data(as_text=True)
    assert answer(client, page, key.get(login_options(page))).headers["Location"] == "/admin/"
    other = app.test_client()
    login(other)
    assert second_step(other, code_of(enrolment.secret)).headers["Location"] == "/admin/"


def test_the_key_step_needs_a_key(app, world, hub, settings, tmp_path):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    # Every key removed between the password and the key step (a lost key): the login starts again.
    out = CliRunner().invoke(
        main, ["admin", "passkeys", "alice", "--remove-all"], env=f.cli_env(settings["database_url"], tmp_path)
    )
    assert out.exit_code == 0
    assert client.get("/admin/login/key").headers["Location"] == "/admin/login"
    assert answer(client, page, key.get(login_options(page))).status_code == 302
    assert client.get("/admin/partners/").headers["Location"].startswith("/admin/login")
    assert not audit_events(hub, "admin.passkey_used")
    # An account with TOTP and no key is sent from the key step to the code.
    enrolment = enrol_totp(hub)
    other = app.test_client()
    login(other)
    assert other.get("/admin/login/key").headers["Location"] == "/admin/login/code"
    assert 'href="/admin/login/key"' not in other.get("/admin/login/code").get_data(as_text=True)
    assert second_step(other, code_of(enrolment.secret)).headers["Location"] == "/admin/"


def test_an_assertion_from_another_origin_is_refused(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    r = answer(client, page, key.get(login_options(page), origin="https://localhost.evil.example"))
    assert refused(r, "was refused")
    assert client.get("/admin/").headers["Location"] == "/admin/login/key"
    assert reasons(hub) == ["wrong"] and "origin" in details(hub, "admin.passkey_refused")[0]["error"]


def test_an_assertion_for_another_rp_id_is_refused(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    assert refused(answer(client, page, key.get(login_options(page), rp_id="evil.example")), "was refused")
    assert "RP ID" in details(hub, "admin.passkey_refused")[0]["error"]


def test_a_replayed_login_challenge_is_refused(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    credential = key.get(login_options(page))
    assert answer(client, page, credential).status_code == 302
    # The same answer, from another browser that has just typed the password: its challenge is not that one.
    other = app.test_client()
    page = key_step(other)
    assert refused(answer(other, page, credential), "used already")
    # An answer to a challenge that a newer page replaced is refused too.
    stale = key.get(login_options(page))
    fresh = other.get("/admin/login/key")
    assert refused(answer(other, fresh, stale), "used already")
    assert reasons(hub) == ["challenge", "challenge"]
    page = other.get("/admin/login/key")
    assert answer(other, page, key.get(login_options(page))).status_code == 302


def test_a_challenge_expires_after_five_minutes(app, world, hub, monkeypatch):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)

    def later(seconds: int):
        return types.SimpleNamespace(now_us=lambda: clock.now_us() + seconds * 1_000_000)

    monkeypatch.setattr(passkeys, "clock", later(passkeys.CHALLENGE_SECONDS + 1))
    assert refused(answer(client, page, key.get(login_options(page))), "expired")
    assert reasons(hub) == ["expired"]
    monkeypatch.setattr(passkeys, "clock", clock)
    page = client.get("/admin/login/key")
    monkeypatch.setattr(passkeys, "clock", later(passkeys.CHALLENGE_SECONDS - 5))
    assert answer(client, page, key.get(login_options(page))).status_code == 302


def test_a_signature_counter_that_goes_backwards_is_refused(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    for _ in range(3):
        client = app.test_client()
        page = key_step(client)
        assert answer(client, page, key.get(login_options(page))).status_code == 302
    assert stored_keys(hub)[0].sign_count == 3
    for count in (3, 2):  # the same counter again, and an older one: a clone of the key
        client = app.test_client()
        page = key_step(client)
        assert refused(answer(client, page, key.get(login_options(page), sign_count=count)), "went backwards")
    assert reasons(hub) == ["regressed", "regressed"] and stored_keys(hub)[0].sign_count == 3
    client = app.test_client()
    page = key_step(client)
    assert answer(client, page, key.get(login_options(page))).status_code == 302


def test_a_key_that_counts_nothing_is_accepted_with_zero_each_time(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    for _ in range(2):
        client = app.test_client()
        page = key_step(client)
        assert answer(client, page, key.get(login_options(page), sign_count=0)).status_code == 302


def test_refused_keys_count_toward_the_lockout(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    stranger = SoftKey()
    stranger.credential_id = key.credential_id  # claims the enrolled key's id: the signature gives it away
    client = app.test_client()
    page = key_step(client)
    for _ in range(signin.LOCKOUT_FAILURES):
        assert refused(answer(client, page, stranger.get(login_options(page))), "was refused")
        page = client.get("/admin/login/key")
    r = answer(client, page, key.get(login_options(page)))
    assert refused(r, "Too many failed logins")
    assert audit_events(hub, "admin.login_locked") and not audit_events(hub, "admin.passkey_used")
    with hub.session(write=False) as s:
        assert s.scalar(select(m.LoginFailure.count).where(m.LoginFailure.source == "admin-user:alice")) == 5
    # Other kinds of refusal count as well: an unknown key.
    with hub.session() as s:
        s.execute(update(m.LoginFailure).values(count=0))
    page = client.get("/admin/login/key")
    assert refused(
        answer(client, page, SoftKey().get(login_options(page).replace('"allowCredentials"', '"x"'))), "not enrolled"
    )
    with hub.session(write=False) as s:
        assert s.scalar(select(m.LoginFailure.count).where(m.LoginFailure.source == "admin-user:alice")) == 1


# --------------------------------------------------------------------- removal, audit, CLI


def test_a_key_is_removed_after_the_current_password(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    answer(client, page, key.get(login_options(page)))
    [stored] = stored_keys(hub)
    token = csrf_of(client.get("/admin/account"))
    r = client.post(
        "/admin/account/keys/remove", data={"csrf_token": token, "remove-key": stored.id, "remove-password": "wrong"}
    )
    assert r.status_code == 400 and "Wrong password" in r.get_data(as_text=True) and stored_keys(hub)
    r = client.post(
        "/admin/account/keys/remove",
        data={"csrf_token": token, "remove-key": stored.id + 99, "remove-password": PASSWORD},
    )
    assert r.status_code == 400 and stored_keys(hub)
    r = client.post(
        "/admin/account/keys/remove", data={"csrf_token": token, "remove-key": stored.id, "remove-password": PASSWORD}
    )
    assert r.status_code == 302 and stored_keys(hub) == []
    assert details(hub, "admin.passkey_removed")[0]["keys"][0]["name"] == "YubiKey 5"
    assert login(app.test_client()).headers["Location"] == "/admin/"  # the password alone again (not required here)


def test_the_auditor_cannot_enrol_a_key_in_the_panel(app, world, hub):
    client = logged_in(app, "audrey")
    assert "Add a security key" not in client.get("/admin/account").get_data(as_text=True)
    assert start_enrolment(client).status_code == 403


def test_every_key_event_is_in_the_intact_audit_chain(app, world, hub):
    key = SoftKey()
    enrol(app, key)
    client = app.test_client()
    page = key_step(client)
    answer(client, page, key.get(login_options(page), origin="http://evil.example"))
    page = client.get("/admin/login/key")
    answer(client, page, key.get(login_options(page)))
    with hub.session() as s:
        passkeys.remove_all(s, s.get(m.AdminUser, stored_keys(hub)[0].user_id), actor="test")
    actions = ("admin.passkey_enrolled", "admin.passkey_used", "admin.passkey_refused", "admin.passkey_removed")
    for action in actions:
        assert audit_events(hub, action), action
    with hub.session(write=False) as s:
        assert verify_chain(s).problem is None


def test_the_cli_lists_and_removes_an_accounts_keys(app, world, hub, settings, tmp_path):
    env = f.cli_env(settings["database_url"], tmp_path)
    out = CliRunner().invoke(main, ["admin", "passkeys", "alice"], env=env)
    assert out.exit_code == 0 and "alice has no security key" in out.output
    enrol(app, SoftKey())
    out = CliRunner().invoke(main, ["admin", "passkeys", "alice"], env=env)
    assert out.exit_code == 0 and "YubiKey 5" in out.output and "never" not in out.output
    assert out.output.splitlines()[0].split() == ["ENROLLED", "LAST", "USED", "COUNTER", "NAME"]
    out = CliRunner().invoke(main, ["admin", "passkeys", "alice", "--remove-all"], env=env)
    assert out.exit_code == 0 and "1 security key(s) removed" in out.output
    assert stored_keys(hub) == []
    assert audit_events(hub, "admin.passkey_removed")[0].actor == "cli"
    assert login(app.test_client()).headers["Location"] == "/admin/"


def test_the_cli_refuses_an_unknown_account_in_one_line(settings, tmp_path):
    env = f.cli_env(settings["database_url"], tmp_path)
    for args in (["admin", "passkeys", "nobody"], ["admin", "passkeys", "nobody", "--remove-all"]):
        out = CliRunner().invoke(main, args, env=env)
        assert out.exit_code == 1
        assert out.output.strip() == "Error: no administrator account named 'nobody'"


# --------------------------------------------------------------------- schema


def test_the_migration_creates_the_key_tables_as_the_models_declare(hub):
    with hub.engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert [d for d in diff if "webauthn" in repr(d)] == []
