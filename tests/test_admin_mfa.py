"""The panel's second factor through Flask's test client: TOTP after the password, forced enrolment,
replay and lockout, recovery codes, re-authentication, the CLI and the demo.

Here ``admin_mfa_required`` is on, as on a new deployment (the rest of the suite turns it off, see
tests/conftest.py); the accounts are the panel tests' alice (admin) and audrey (auditor).
"""

from __future__ import annotations

import re
import warnings

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import select

from hub import config, mfa
from hub import models as m
from hub.admin import blueprint, signin
from hub.cli import main
from hub.cli.ops import verify_chain
from tests import factories as f
from tests.panel import (
    PASSWORD,
    audit_events,
    code_of,
    csrf_of,
    enrol_totp,
    get_views,
    login,
    second_step,
    wrong_code,
)
from tests.worlds import panel_world

MFA_EVENTS = (
    "admin.mfa_enrolled",
    "admin.mfa_reset",
    "admin.mfa_code_accepted",
    "admin.mfa_code_refused",
    "admin.mfa_recovery_used",
    "admin.mfa_recovery_regenerated",
)


@pytest.fixture
def app(make_app):
    return make_app(admin_mfa_required=True)


@pytest.fixture
def world(hub):
    return panel_world(hub)


def logged_in_with_code(client, secret: str, username: str = "alice", steps_ahead: int = 0):
    assert login(client, username).headers["Location"] == "/admin/login/code"
    r = second_step(client, code_of(secret, steps_ahead))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/", r.get_data(as_text=True)
    return client


def logout(client) -> None:
    assert client.post("/admin/logout", data={"csrf_token": csrf_of(client.get("/admin/"))}).status_code == 302


def refused(r, text: str) -> bool:
    return r.status_code == 401 and text in r.get_data(as_text=True)


# --------------------------------------------------------------------- the setting


def test_a_new_deployment_requires_a_second_factor(monkeypatch, tmp_path):
    assert config.DEFAULTS["admin_mfa_required"] is True
    monkeypatch.delenv("CTI_HUB_ADMIN_MFA_REQUIRED")
    assert config.load(overrides={"data_dir": str(tmp_path), "secret_key": "x"})["admin_mfa_required"] is True
    monkeypatch.setenv("CTI_HUB_ADMIN_MFA_REQUIRED", "false")
    assert config.load(overrides={"data_dir": str(tmp_path), "secret_key": "x"})["admin_mfa_required"] is False


def test_without_the_requirement_an_account_without_authenticator_logs_in_with_its_password(make_app, world):
    client = make_app(admin_mfa_required=False).test_client()
    assert login(client).headers["Location"] == "/admin/"
    assert client.get("/admin/partners/").status_code == 200


def test_without_the_requirement_an_enrolled_account_still_needs_its_code(make_app, world, hub):
    secret = enrol_totp(hub).secret
    optional = make_app(admin_mfa_required=False)
    client = optional.test_client()
    assert login(client).headers["Location"] == "/admin/login/code"
    assert client.get("/admin/partners/").status_code == 302
    assert logged_in_with_code(optional.test_client(), secret).get("/admin/partners/").status_code == 200


# --------------------------------------------------------------------- password, then code


def test_password_then_code_logs_in_and_nothing_opens_before_the_code(app, world, hub):
    secret = enrol_totp(hub).secret
    client = app.test_client()
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"] == "/admin/login/code"
    for path in get_views(world) + ["/admin/login/enrol"]:  # the password alone opens nothing but the code step
        r = client.get(path)
        assert r.status_code == 302 and r.headers["Location"] == "/admin/login/code", path
    token = csrf_of(client.get("/admin/login/code"))
    r = client.post("/admin/partners/krcert/suspend", data={"csrf_token": token})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/login/code"
    assert client.get("/admin/login/code").status_code == 200  # still waiting for the code
    r = second_step(client, code_of(secret))
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"
    assert client.get("/admin/partners/").status_code == 200
    with hub.session(write=False) as s:
        assert s.execute(select(m.Partner.active).where(m.Partner.slug == "krcert")).scalar_one() is True
        actions = list(s.scalars(select(m.AuditEvent.action).where(m.AuditEvent.actor == "alice")))
    assert actions[-3:] == ["admin.login_password", "admin.mfa_code_accepted", "admin.login"]


def test_the_code_step_keeps_the_page_the_login_was_sent_from(app, world, hub):
    secret = enrol_totp(hub).secret
    client = app.test_client()
    token = csrf_of(client.get("/admin/login"))
    r = client.post(
        "/admin/login?next=/admin/audit", data={"csrf_token": token, "username": "alice", "password": PASSWORD}
    )
    assert r.headers["Location"] == "/admin/login/code"
    assert second_step(client, code_of(secret)).headers["Location"] == "/admin/audit"


def test_a_wrong_code_is_refused_and_counts_toward_the_lockout(app, world, hub):
    secret = enrol_totp(hub).secret
    client = app.test_client()
    login(client)
    for _ in range(signin.LOCKOUT_FAILURES):
        assert refused(second_step(client, wrong_code(secret)), "Wrong code")
    # Locked: the right code, and then the right password, are refused too.
    assert refused(second_step(client, code_of(secret)), "Too many failed logins")
    assert refused(login(app.test_client()), "Too many failed logins")
    refusals = audit_events(hub, "admin.mfa_code_refused")
    assert len(refusals) == signin.LOCKOUT_FAILURES and all('"wrong"' in e.detail for e in refusals)
    assert audit_events(hub, "admin.login_locked") and not audit_events(hub, "admin.login")


def test_the_right_password_does_not_give_the_code_step_new_guesses(app, world, hub):
    secret = enrol_totp(hub).secret
    for _ in range(signin.LOCKOUT_FAILURES - 1):
        client = app.test_client()
        assert login(client).headers["Location"] == "/admin/login/code"
        assert refused(second_step(client, wrong_code(secret)), "Wrong code")
    client = app.test_client()
    login(client)
    assert refused(second_step(client, wrong_code(secret)), "Wrong code")
    assert refused(second_step(client, code_of(secret)), "Too many failed logins")


def test_a_replayed_code_is_refused_and_so_is_one_of_an_earlier_step(app, world, hub):
    secret = enrol_totp(hub).secret
    used = code_of(secret)
    client = app.test_client()
    login(client)
    assert second_step(client, used).status_code == 302
    logout(client)
    again = app.test_client()
    login(again)
    assert refused(second_step(again, used), "used already")
    # The next step's code works; after it, the current step's code is older than the newest used: refused.
    assert second_step(again, code_of(secret, 1)).status_code == 302
    logout(again)
    third = app.test_client()
    login(third)
    assert refused(second_step(third, code_of(secret)), "used already")
    reasons = [e.detail for e in audit_events(hub, "admin.mfa_code_refused")]
    assert len(reasons) == 2 and all('"replayed"' in r for r in reasons)


def test_two_requests_racing_with_one_code_let_exactly_one_in(app, world, hub):
    secret = enrol_totp(hub).secret
    code = code_of(secret)
    with hub.session(write=False) as s:
        user_id = s.execute(select(m.AdminUser.id).where(m.AdminUser.username == "alice")).scalar_one()
    with hub.session() as first:
        assert mfa.check_code(first, hub.pepper, user_id, code)[0] == "accepted"
    with hub.session() as second:
        assert mfa.check_code(second, hub.pepper, user_id, code)[0] == "replayed"


def test_a_pending_login_lapses(app, world, hub, monkeypatch):
    secret = enrol_totp(hub).secret
    client = app.test_client()
    login(client)
    token = csrf_of(client.get("/admin/login/code"))
    monkeypatch.setattr(blueprint, "PENDING_SECONDS", -1)
    r = client.post("/admin/login/code", data={"csrf_token": token, "code": code_of(secret)})
    assert r.status_code == 302 and r.headers["Location"].startswith("/admin/login")
    assert client.get("/admin/").status_code == 302
    assert not audit_events(hub, "admin.mfa_code_accepted")


# --------------------------------------------------------------------- recovery codes


def test_a_recovery_code_works_once_and_only_once(app, world, hub):
    enrolment = enrol_totp(hub)
    code = enrolment.recovery_codes[3]
    client = app.test_client()
    login(client)
    r = second_step(client, code.upper().replace("-", " "))  # as typed off paper
    assert r.status_code == 302 and r.headers["Location"] == "/admin/"
    logout(client)
    again = app.test_client()
    login(again)
    assert refused(second_step(again, code), "Wrong code")
    with hub.session(write=False) as s:
        user_id = s.execute(select(m.AdminUser.id).where(m.AdminUser.username == "alice")).scalar_one()
        assert mfa.status(s, user_id)["recovery_left"] == mfa.RECOVERY_CODES - 1
        stored = list(s.scalars(select(m.AdminRecoveryCode.code_hash)))
    assert len(stored) == mfa.RECOVERY_CODES and not any(
        c.replace("-", "") in h for c in enrolment.recovery_codes for h in stored
    )
    used = audit_events(hub, "admin.mfa_recovery_used")
    assert len(used) == 1 and '"left":9' in used[0].detail


def test_the_secret_is_sealed_at_rest_and_another_hub_secret_falls_back_to_recovery_codes(
    make_app, settings, world, hub
):
    enrolment = enrol_totp(hub)
    with hub.session(write=False) as s:
        sealed = s.scalars(select(m.AdminTotp.sealed_secret)).one()
    assert enrolment.secret not in sealed and mfa.unseal(hub.pepper, sealed) == enrolment.secret
    other = make_app(admin_mfa_required=True, secret_key="another-secret-key").test_client()
    login(other)
    r = second_step(other, code_of(enrolment.secret))
    assert refused(r, "recovery code")
    assert second_step(other, enrolment.recovery_codes[0]).status_code == 302


# --------------------------------------------------------------------- enrolment forced at login


def test_an_account_without_authenticator_must_enrol_before_anything_else(app, world, hub):
    client = app.test_client()
    r = login(client)
    assert r.status_code == 302 and r.headers["Location"] == "/admin/login/enrol"
    for path in get_views(world) + ["/admin/account", "/admin/login/code"]:
        assert client.get(path).headers["Location"] == "/admin/login/enrol", path
    page = client.get("/admin/login/enrol")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and 'src="data:image/svg+xml' in body
    secret = re.search(r'id="totp-secret" class="secret">([A-Z2-7]{32})<', body).group(1)
    assert client.get("/admin/login/enrol").get_data(as_text=True).count(secret) >= 2  # the same on reload
    r = client.post("/admin/login/enrol", data={"csrf_token": csrf_of(page), "code": wrong_code(secret)})
    assert r.status_code == 400 and "does not match" in r.get_data(as_text=True)
    assert client.get("/admin/").status_code == 302
    r = client.post("/admin/login/enrol", data={"csrf_token": csrf_of(page), "code": code_of(secret)})
    shown = r.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", shown)
    assert r.status_code == 200 and len(codes) == mfa.RECOVERY_CODES
    assert client.get("/admin/partners/").status_code == 200  # logged in
    assert [e.detail for e in audit_events(hub, "admin.mfa_enrolled")] == [
        '{"factor":"totp","via":"panel","recovery_codes":10}'
    ]
    logout(client)
    # From now on the account logs in with its code; the enrolment's code counted as used.
    nxt = app.test_client()
    login(nxt)
    assert refused(second_step(nxt, code_of(secret)), "used already")
    assert second_step(nxt, codes[0]).status_code == 302


def test_the_auditor_enrols_at_login_but_changes_nothing_in_the_panel(app, world, hub):
    client = app.test_client()
    assert login(client, "audrey").headers["Location"] == "/admin/login/enrol"
    page = client.get("/admin/login/enrol")
    secret = re.search(r'id="totp-secret" class="secret">([A-Z2-7]{32})<', page.get_data(as_text=True)).group(1)
    assert (
        client.post("/admin/login/enrol", data={"csrf_token": csrf_of(page), "code": code_of(secret)}).status_code
        == 200
    )
    account = client.get("/admin/account")
    assert account.status_code == 200 and "cti-hub admin totp audrey" in account.get_data(as_text=True)
    token = csrf_of(account)
    for path in ("/admin/account/totp", "/admin/account/totp/confirm", "/admin/account/recovery-codes"):
        assert client.post(path, data={"csrf_token": token, "setup-password": PASSWORD}).status_code == 403


# --------------------------------------------------------------------- the account page: reset behind the password


def test_replacing_the_authenticator_needs_the_current_password_and_a_code_of_the_new_one(app, world, hub):
    old = enrol_totp(hub).secret
    client = logged_in_with_code(app.test_client(), old)
    page = client.get("/admin/account")
    assert page.status_code == 200 and "enrolled" in page.get_data(as_text=True)
    token = csrf_of(page)
    r = client.post("/admin/account/totp", data={"csrf_token": token, "setup-password": "not my password"})
    assert r.status_code == 400 and "Wrong password" in r.get_data(as_text=True)
    assert audit_events(hub, "admin.reauth_failed")
    r = client.post("/admin/account/totp", data={"csrf_token": token, "setup-password": PASSWORD})
    new = re.search(r'id="totp-secret" class="secret">([A-Z2-7]{32})<', r.get_data(as_text=True)).group(1)
    assert r.status_code == 200 and new != old
    r = client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": code_of(old, 1)})
    assert r.status_code == 400 and "does not match" in r.get_data(as_text=True)  # the old one does not confirm
    r = client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": code_of(new)})
    assert r.status_code == 200 and len(re.findall(r"<li><code>", r.get_data(as_text=True))) == mfa.RECOVERY_CODES
    assert [e.target for e in audit_events(hub, "admin.mfa_reset")] == ["alice"]
    logout(client)
    again = app.test_client()
    login(again)
    assert refused(second_step(again, code_of(old, 1)), "Wrong code")  # the old authenticator is gone
    assert second_step(again, code_of(new, 1)).status_code == 302


def test_wrong_current_passwords_count_toward_the_lockout(app, world, hub):
    secret = enrol_totp(hub).secret
    client = logged_in_with_code(app.test_client(), secret)
    token = csrf_of(client.get("/admin/account"))
    for _ in range(signin.LOCKOUT_FAILURES):
        r = client.post("/admin/account/recovery-codes", data={"csrf_token": token, "codes-password": "guess guess!"})
        assert r.status_code == 400
    r = client.post("/admin/account/recovery-codes", data={"csrf_token": token, "codes-password": PASSWORD})
    assert r.status_code == 400 and "Too many failed logins" in r.get_data(as_text=True)
    assert not audit_events(hub, "admin.mfa_recovery_regenerated")


def test_new_recovery_codes_replace_the_old_ones(app, world, hub):
    enrolment = enrol_totp(hub)
    client = logged_in_with_code(app.test_client(), enrolment.secret)
    token = csrf_of(client.get("/admin/account"))
    r = client.post("/admin/account/recovery-codes", data={"csrf_token": token, "codes-password": PASSWORD})
    fresh = re.findall(r"<li><code>([a-z0-9-]{19})</code></li>", r.get_data(as_text=True))
    assert r.status_code == 200 and len(fresh) == mfa.RECOVERY_CODES and not set(fresh) & set(enrolment.recovery_codes)
    logout(client)
    again = app.test_client()
    login(again)
    assert refused(second_step(again, enrolment.recovery_codes[0]), "Wrong code")
    assert second_step(again, fresh[0]).status_code == 302
    assert len(audit_events(hub, "admin.mfa_recovery_regenerated")) == 1


def test_a_confirmation_without_a_fresh_password_step_is_refused(app, world, hub):
    secret = enrol_totp(hub).secret
    client = logged_in_with_code(app.test_client(), secret)
    token = csrf_of(client.get("/admin/account"))
    r = client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": code_of(secret, 1)})
    assert r.status_code == 400 and "start again" in r.get_data(as_text=True)
    assert not audit_events(hub, "admin.mfa_reset")


# --------------------------------------------------------------------- the audit trail


def test_every_second_factor_event_is_in_the_intact_audit_chain(app, world, hub):
    enrolment = enrol_totp(hub)
    client = app.test_client()
    login(client)
    second_step(client, wrong_code(enrolment.secret))
    second_step(client, code_of(enrolment.secret))
    token = csrf_of(client.get("/admin/account"))
    client.post("/admin/account/recovery-codes", data={"csrf_token": token, "codes-password": PASSWORD})
    r = client.post("/admin/account/totp", data={"csrf_token": token, "setup-password": PASSWORD})
    new = re.search(r'id="totp-secret" class="secret">([A-Z2-7]{32})<', r.get_data(as_text=True)).group(1)
    codes = re.findall(
        r"<li><code>([a-z0-9-]{19})</code></li>",
        client.post("/admin/account/totp/confirm", data={"csrf_token": token, "code": code_of(new)}).get_data(
            as_text=True
        ),
    )
    logout(client)
    again = app.test_client()
    login(again)
    second_step(again, codes[0])
    for action in MFA_EVENTS:
        assert audit_events(hub, action), action
    with hub.session(write=False) as s:
        assert verify_chain(s).problem is None
        sources = set(s.scalars(select(m.AuditEvent.source).where(m.AuditEvent.action.in_(MFA_EVENTS[1:]))))
    assert sources == {"127.0.0.1"}


# --------------------------------------------------------------------- the command line and the demo


def test_admin_create_with_totp_prints_the_uri_once_and_the_login_needs_it(app, settings, tmp_path, hub):
    env = {**f.cli_env(settings["database_url"], tmp_path), "CTI_HUB_ADMIN_MFA_REQUIRED": "true"}
    out = CliRunner().invoke(
        main, ["admin", "create", "bob", "--password-stdin", "--mfa", "totp"], input=PASSWORD + "\n", env=env
    )
    assert out.exit_code == 0, out.output
    uri = re.search(r"^(otpauth://totp/cti-hub:bob\?secret=([A-Z2-7]{32})&issuer=cti-hub)$", out.output, re.M)
    assert uri, out.output
    secret = uri.group(2)
    assert (
        len(re.findall(r"^  [a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$", out.output, re.M)) == mfa.RECOVERY_CODES
    )
    client = app.test_client()
    assert login(client, "bob").headers["Location"] == "/admin/login/code"
    assert second_step(client, code_of(secret)).headers["Location"] == "/admin/"
    # `admin totp` gives a new authenticator: the old one stops working; `--remove` takes it off.
    out = CliRunner().invoke(main, ["admin", "totp", "bob"], env=env)
    newer = re.search(r"secret=([A-Z2-7]{32})", out.output).group(1)
    again = app.test_client()
    login(again, "bob")
    assert refused(second_step(again, code_of(secret, 1)), "Wrong code")
    assert second_step(again, code_of(newer, 1)).status_code == 302
    out = CliRunner().invoke(main, ["admin", "totp", "bob", "--remove"], env=env)
    assert out.exit_code == 0 and "enrols a new authenticator at its next login" in out.output
    assert login(app.test_client(), "bob").headers["Location"] == "/admin/login/enrol"
    assert [e.action for e in audit_events(hub, "admin.mfa_removed")] == ["admin.mfa_removed"]
    assert len(audit_events(hub, "admin.mfa_enrolled")) == 1 and len(audit_events(hub, "admin.mfa_reset")) == 1


def test_admin_create_without_totp_prints_no_uri(settings, tmp_path):
    env = f.cli_env(settings["database_url"], tmp_path)
    out = CliRunner().invoke(main, ["admin", "create", "carol", "--password-stdin"], input=PASSWORD + "\n", env=env)
    assert out.exit_code == 0 and "otpauth://" not in out.output


def test_the_demo_prints_a_second_factor_beside_the_password_that_opens_the_panel(app, settings, tmp_path):
    env = {**f.cli_env(settings["database_url"], tmp_path), "CTI_HUB_ADMIN_MFA_REQUIRED": "true"}

    def demo() -> tuple[str, str]:
        out = CliRunner().invoke(main, ["demo", "--file", "config/sharing.yaml", "--objects", "20"], env=env)
        assert out.exit_code == 0, out.output
        password = re.search(r"Admin panel: \S+\s+user: admin\s+password: (\S+)", out.output).group(1)
        secret = re.search(
            r"second factor \(TOTP[^)]*\): otpauth://totp/cti-hub:admin\?secret=([A-Z2-7]{32})", out.output
        )
        assert secret, out.output
        return password, secret.group(1)

    password, secret = demo()
    client = app.test_client()
    assert login(client, "admin", password).headers["Location"] == "/admin/login/code"
    assert second_step(client, code_of(secret)).headers["Location"] == "/admin/"
    assert client.get("/admin/partners/").status_code == 200
    password2, secret2 = demo()  # a new password and a new authenticator at each run
    assert secret2 != secret
    again = app.test_client()
    login(again, "admin", password2)
    assert refused(second_step(again, code_of(secret, 1)), "Wrong code")
    assert second_step(again, code_of(secret2, 1)).status_code == 302


# --------------------------------------------------------------------- schema


def test_the_migration_creates_the_second_factor_tables_as_the_models_declare(hub):
    with hub.engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection of expression-based index")
        warnings.filterwarnings("ignore", "autogenerate skipping metadata-specified expression-based index")
        diff = compare_metadata(MigrationContext.configure(conn), m.Base.metadata)
    assert [d for d in diff if "admin_totp" in repr(d) or "admin_recovery_codes" in repr(d)] == []
