"""The panel's second factor in headless Chromium, against the real server (`cti-hub serve`).

With ``admin_mfa_required`` on: a login is the password, then a TOTP code; a wrong code and a replayed
code are refused; a recovery code works once and only once; an account without an authenticator
enrols one (QR code, key, confirming code, recovery codes) before it reaches the panel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub import sharing
from tests.browser import launch, require_chromium
from tests.live import ROOT, free_port, wait_ready
from tests.panel import PASSWORD, add_admin, code_of, enrol_totp, wrong_code

pytestmark = pytest.mark.slow


playwright_api = require_chromium()


@pytest.fixture
def server(make_app, settings, tmp_path):
    """The demo sharing configuration; alice has an authenticator, bob none; `cti-hub serve` with MFA required."""
    hub = make_app().extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
        add_admin(s, "alice", "admin")
        add_admin(s, "bob", "admin")
    enrolment = enrol_totp(hub, "alice")
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
        "CTI_HUB_ADMIN_MFA_REQUIRED": "true",  # as on a new deployment
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)
        yield base, enrolment
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()


@pytest.fixture
def browser():
    yield from launch(playwright_api)


def new_page(browser):  # type: ignore[no-untyped-def]
    """A page in a context of its own (its own cookies) that records script errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []
    # A refused code is answered 401, which Chromium logs as a failed load: that one is expected.
    page.on(
        "console",
        lambda msg: msg.type == "error" and "status of 401" not in msg.text and page.problems.append(msg.text),
    )
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    return page


def password_step(page, base: str, username: str = "alice") -> None:
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def code_step(page, code: str) -> None:
    page.wait_for_url("**/admin/login/code")
    page.fill("#code", code)
    page.click("button[type=submit]")


def logs_in(page, base: str) -> None:
    page.wait_for_url(f"{base}/admin/")
    assert page.inner_text("h1") == "Dashboard"


def refused(page, text: str) -> None:
    page.wait_for_url("**/admin/login/code")
    assert text in page.inner_text("[role=alert]")
    page.goto(page.url.replace("/login/code", "/partners/"))  # and nothing else opens meanwhile
    assert page.url.endswith("/admin/login/code")


def log_out(page) -> None:
    page.click("text=Log out")
    page.wait_for_url("**/admin/login")


def shot(page, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_password_then_totp_code_a_wrong_code_refused_a_replayed_code_refused(server, browser, tmp_path):
    base, enrolment = server
    page = new_page(browser)
    password_step(page, base)
    page.wait_for_url("**/admin/login/code")
    shot(page, tmp_path, "01-code-step")
    code_step(page, wrong_code(enrolment.secret))
    refused(page, "Wrong code")
    shot(page, tmp_path, "02-wrong-code")
    used = code_of(enrolment.secret)
    code_step(page, used)
    logs_in(page, base)
    log_out(page)
    # The same code again, from another browser: refused as a replay.
    other = new_page(browser)
    password_step(other, base)
    code_step(other, used)
    refused(other, "used already")
    shot(other, tmp_path, "03-replayed-code")
    code_step(other, code_of(enrolment.secret, 1))  # the next code works
    logs_in(other, base)
    assert page.problems == [] and other.problems == []


def test_a_recovery_code_works_once_and_only_once(server, browser, tmp_path):
    base, enrolment = server
    code = enrolment.recovery_codes[0]
    page = new_page(browser)
    password_step(page, base)
    code_step(page, code)
    logs_in(page, base)
    page.click("header a[title^='Your account']")
    page.wait_for_url(f"{base}/admin/account")
    assert page.inner_text("#mfa-recovery-left") == "9"
    shot(page, tmp_path, "04-account")
    log_out(page)
    again = new_page(browser)
    password_step(again, base)
    code_step(again, code)
    refused(again, "Wrong code")
    assert page.problems == [] and again.problems == []


def test_an_account_without_authenticator_enrols_before_it_reaches_the_panel(server, browser, tmp_path):
    base, _ = server
    page = new_page(browser)
    password_step(page, base, "bob")
    page.wait_for_url("**/admin/login/enrol")
    page.goto(f"{base}/admin/audit")  # nothing else opens first
    page.wait_for_url("**/admin/login/enrol")
    qr = page.locator("img.qr")
    assert qr.is_visible() and qr.evaluate("img => img.complete && img.naturalWidth > 0")
    shot(page, tmp_path, "05-enrol")
    secret = page.inner_text("#totp-secret").strip()
    page.fill("#code", code_of(secret))
    page.click("text=Confirm and enrol")
    page.wait_for_selector("#recovery-codes")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    shot(page, tmp_path, "06-recovery-codes")
    page.click("text=Done: I have stored them")
    logs_in(page, base)
    log_out(page)
    password_step(page, base, "bob")  # from now on, bob's login asks for a code
    code_step(page, code_of(secret, 1))
    logs_in(page, base)
    assert page.problems == []
