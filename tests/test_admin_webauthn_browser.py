"""Security keys in headless Chromium, against the real server (`cti-hub serve`), with Chromium's virtual
authenticator (DevTools protocol: CTAP2 over USB, resident keys, user verification).

A logged-in account enrols a key from its account page (current password, then the browser asks the
key); from then on its login is the password, then the key (or the code, for an account that has
both); an account whose only factor is the key logs in with it until the key is removed; an account
without a factor enrols a key at its first login instead of an authenticator app.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hub import mfa, passkeys, sharing
from tests.browser import launch, new_page, require_chromium
from tests.live import ROOT, free_port, serve_command
from tests.panel import PASSWORD, add_admin, audit_events, code_of

pytestmark = pytest.mark.slow

playwright_api = require_chromium()


@pytest.fixture
def server(make_app, settings, tmp_path):
    """`cti-hub serve` with ``public_url`` on localhost (WebAuthn needs a host name, not an address)."""
    hub = make_app().extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
        add_admin(s, "alice", "admin")
    port = free_port()
    public = f"http://localhost:{port}"
    overrides = {"admin_mfa_required": "true", "public_url": public}
    for _ in serve_command({**settings, **overrides}, tmp_path, port=port):
        yield public, hub


@pytest.fixture
def browser():
    yield from launch(playwright_api)


def with_authenticator(page) -> str:
    """Attach a virtual FIDO2 key to the page's browser context; return its id."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    page.cdp = cdp
    return added["authenticatorId"]


def password_step(page, base: str) -> None:
    page.goto(f"{base}/admin/")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def shot(page, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def enrol_totp_at_login(page, base: str) -> None:
    """The hub requires a second factor and alice has none: her first login enrols an authenticator app."""
    password_step(page, base)
    page.wait_for_url("**/admin/login/enrol")
    page.fill("#code", code_of(page.inner_text("#totp-secret").strip()))
    page.click("text=Confirm and enrol")
    page.click("text=Done: I have stored them")
    page.wait_for_url(f"{base}/admin/")


def enrol_from_the_account_page(page, base: str) -> None:
    """A logged-in alice adds a key: name and current password, then the browser asks the key."""
    page.goto(f"{base}/admin/account")
    page.fill("#key-name", "Virtual key")
    page.fill("#key-password", PASSWORD)
    page.click("#security-keys button.primary")
    page.wait_for_url("**/admin/account/keys")
    page.click("#webauthn-start")
    page.wait_for_url(f"{base}/admin/account")
    assert "Virtual key" in page.inner_text("#security-keys")


def log_out(page) -> None:
    page.click("text=Log out")
    page.wait_for_url("**/admin/login")


def test_enrol_a_key_then_log_in_with_it_instead_of_the_code(server, browser, tmp_path):
    base, hub = server
    page = new_page(browser)
    authenticator = with_authenticator(page)
    enrol_totp_at_login(page, base)
    enrol_from_the_account_page(page, base)
    shot(page, tmp_path, "01-key-enrolled")
    credentials = page.cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["rpId"] == "localhost"
    with hub.session(write=False) as s:
        [key] = passkeys.keys(s, mfa.account(s, "alice").id)
        enrolled_count = key.sign_count
    log_out(page)
    password_step(page, base)
    page.wait_for_url("**/admin/login/code")
    page.click("#use-key")
    page.wait_for_url("**/admin/login/key")
    shot(page, tmp_path, "02-key-step")
    page.click("#webauthn-start")
    page.wait_for_url(f"{base}/admin/")
    assert page.inner_text("h1") == "Dashboard"
    [used] = audit_events(hub, "admin.passkey_used")
    with hub.session(write=False) as s:  # the virtual key counts its signatures: the counter moved on
        [key] = passkeys.keys(s, mfa.account(s, "alice").id)
        assert key.sign_count > enrolled_count and key.last_used_us
    assert f'"sign_count":{key.sign_count}' in used.detail
    assert page.problems == []


def test_a_key_only_account_logs_in_with_its_key_until_the_key_is_removed(server, browser, tmp_path):
    base, hub = server
    page = new_page(browser)
    with_authenticator(page)
    enrol_totp_at_login(page, base)
    enrol_from_the_account_page(page, base)
    with hub.session() as s:  # `cti-hub admin totp alice --remove`: the key is alice's only factor now
        mfa.remove(s, "alice", actor="test")
    log_out(page)
    password_step(page, base)
    page.wait_for_url("**/admin/login/key")
    page.goto(f"{base}/admin/partners/")  # nothing else opens before the key
    page.wait_for_url("**/admin/login/key")
    page.click("#webauthn-start")
    page.wait_for_url(f"{base}/admin/")
    log_out(page)
    with hub.session() as s:  # `cti-hub admin passkeys alice --remove-all`
        assert passkeys.remove_all(s, mfa.account(s, "alice"), actor="test") == 1
    password_step(page, base)
    page.wait_for_url("**/admin/login/enrol")  # required, and the account has no factor left
    assert page.problems == []


def test_the_first_login_enrols_a_key_instead_of_an_authenticator_app(server, browser, tmp_path):
    base, hub = server
    page = new_page(browser)
    authenticator = with_authenticator(page)
    password_step(page, base)
    page.wait_for_url("**/admin/login/enrol")
    page.click("#enrol-key")
    page.wait_for_url("**/admin/login/enrol/key")
    page.fill("#name", "First key")
    shot(page, tmp_path, "03-forced-key-enrolment")
    page.click("#webauthn-start")
    page.wait_for_url(f"{base}/admin/")
    assert page.inner_text("h1") == "Dashboard" and "Security key enrolled" in page.content()
    credentials = page.cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1 and credentials[0]["rpId"] == "localhost"
    with hub.session(write=False) as s:
        [key] = passkeys.keys(s, mfa.account(s, "alice").id)
        assert key.name == "First key" and not mfa.has_totp(s, key.user_id)
    log_out(page)
    password_step(page, base)
    page.wait_for_url("**/admin/login/key")  # the key, not the enrolment, from now on
    page.click("#webauthn-start")
    page.wait_for_url(f"{base}/admin/")
    assert page.problems == []
