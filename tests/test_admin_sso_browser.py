"""Single sign-on in headless Chromium: the real server, a real OpenID Connect provider, the real browser.

The provider (tests/oidc_provider.py) answers as ``localhost`` while the hub is ``127.0.0.1``: two sites,
so the provider's redirect back is a cross-site navigation, as with a real provider, and the panel's
``SameSite=Strict`` session cookie must still be set and sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from hub import models as m
from hub import sharing
from tests.browser import launch, new_page, require_chromium
from tests.live import ROOT, free_port, wait_ready
from tests.oidc_provider import PASSWORD, OIDCProvider, hub_settings
from tests.panel import audit_events

pytestmark = pytest.mark.slow


playwright_api = require_chromium()


@pytest.fixture
def provider():
    p = OIDCProvider(issuer_host="localhost").start()
    p.add_user("aud", email="aud@cert.example", groups=["staff", "cti-auditors"])
    p.add_user("eve", email="eve@cert.example", groups=["staff"])
    yield p
    p.stop()


@pytest.fixture
def server(make_app, settings, tmp_path, provider):
    """The demo sharing configuration and `cti-hub serve` with single sign-on through ``provider``."""
    hub = make_app().extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sso = {f"CTI_HUB_{k.upper()}": v for k, v in hub_settings(provider, public_url=base).items()}
    sso.pop("CTI_HUB_OIDC_CLIENT_SECRET")
    (tmp_path / "client-secret").write_text(hub_settings(provider, public_url=base)["oidc_client_secret"])
    env = {
        **os.environ,
        **sso,
        "CTI_HUB_OIDC_CLIENT_SECRET_FILE": str(tmp_path / "client-secret"),
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
    }
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--workers", "2"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_ready(base, proc)
        yield base, hub
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def browser():
    yield from launch(playwright_api)


def to_provider(page, base: str, provider) -> None:
    """From the panel's login page, through the "Sign in with" button, to the provider's login form."""
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    page.click("text=Sign in with Test IdP")
    page.wait_for_url(re.compile(re.escape(provider.issuer) + "/authorize"))


def sign_in(page, user: str) -> None:
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_sso_maps_the_claim_to_auditor_who_cannot_change_anything_then_logs_out(server, browser, provider):
    base, hub = server
    page = new_page(browser)
    to_provider(page, base, provider)
    assert provider.requests[-1]["code_challenge_method"] == "S256"
    sign_in(page, "aud")
    page.wait_for_url(f"{base}/admin/")  # the landing page moves on by itself, with the new session
    assert page.inner_text("h1") == "Dashboard"
    assert "sso:aud@cert.example" in page.inner_text("header") and "auditor" in page.inner_text("header .role")
    assert "Read-only auditor session" in page.inner_text("main")

    # Admin-only actions: no button for them, and a forced submission is refused.
    page.goto(f"{base}/admin/partners/krcert")
    assert page.locator("text=Suspend").count() == 0 and page.locator("text=Issue key").count() == 0
    page.goto(f"{base}/admin/partners/new")
    assert page.locator("text=Save partner").count() == 0
    page.fill("#slug", "tlcert")
    page.fill("#name", "Timor-Leste CERT")
    with page.expect_navigation():
        page.evaluate("document.querySelector('main form').submit()")
    assert "403" in page.inner_text("h1") and "read-only" in page.inner_text("main")
    page.problems.remove("Failed to load resource: the server responded with a status of 403 (FORBIDDEN)")
    with hub.session(write=False) as s:
        assert s.scalar(select(func.count()).select_from(m.Partner).where(m.Partner.slug == "tlcert")) == 0

    page.goto(f"{base}/admin/")
    page.click("text=Log out")
    page.wait_for_url(f"{base}/admin/login")
    page.goto(f"{base}/admin/audit")
    assert "/admin/login" in page.url
    [login] = audit_events(hub, "admin.sso_login")
    assert login.actor == "sso:aud@cert.example" and login.target == provider.users["aud"].sub
    assert [e.actor for e in audit_events(hub, "admin.logout")] == ["sso:aud@cert.example"]
    assert page.problems == [], page.problems


def test_sso_refuses_an_unmapped_claim(server, browser, provider):
    base, hub = server
    page = new_page(browser)
    to_provider(page, base, provider)
    sign_in(page, "eve")
    page.wait_for_url(re.compile(re.escape(base) + "/admin/sso/callback"))
    assert page.inner_text("h1") == "Single sign-on refused"
    assert "'groups' claim (staff) maps to no role in this panel" in page.inner_text("main")
    page.click("text=Back to the login page")
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    [refused] = audit_events(hub, "admin.sso_refused")
    assert refused.actor == "sso:eve@cert.example"
    assert not audit_events(hub, "admin.sso_login")


def test_sso_refuses_a_tampered_state(server, browser, provider):
    base, hub = server
    page = new_page(browser)
    to_provider(page, base, provider)
    state = re.search(r"[?&]state=([^&]+)", page.url).group(1)
    page.goto(page.url.replace(f"state={state}", f"state={state[:-1]}{'B' if state.endswith('A') else 'A'}"))
    sign_in(page, "aud")
    page.wait_for_url(re.compile(re.escape(base) + "/admin/sso/callback"))
    assert "state mismatch" in page.inner_text("main")
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    assert "state mismatch" in audit_events(hub, "admin.sso_refused")[0].detail
