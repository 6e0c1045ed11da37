"""End to end in headless Chromium: an administrator onboards a partner, and the preview explains a denial.

The real server (`cti-hub serve`) runs as a subprocess; the browser is Debian's Chromium driven by
Playwright, and the partner side is taxii2-client with the key the panel issued. Screenshots of the
main pages are saved in the test's temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from taxii2client.v21 import Collection

from hub import sharing
from tests import factories as f
from tests.browser import open_page, require_chromium
from tests.live import ROOT, free_port, wait_ready
from tests.panel import PASSWORD, add_admin

pytestmark = pytest.mark.slow

AMBER = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"

playwright_api = require_chromium()


@pytest.fixture
def server(make_app, settings, tmp_path):
    """The demo sharing configuration, one admin account, and `cti-hub serve` on a free port."""
    hub = make_app().extensions["cti_hub"]
    with hub.session() as s:
        sharing.apply(s, sharing.load(ROOT / "config" / "sharing.yaml"))
        add_admin(s, "alice", "admin")
    port = free_port()
    env = {
        **os.environ,
        "CTI_HUB_DATABASE_URL": settings["database_url"],
        "CTI_HUB_SECRET_KEY": settings["secret_key"],
        "CTI_HUB_DATA_DIR": str(tmp_path),
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
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stderr.close()


@pytest.fixture
def page(tmp_path):
    yield from open_page(playwright_api)


def shot(page, tmp_path: Path, name: str) -> None:
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_onboard_a_partner_publish_pull_and_explain_a_denial(server, page, tmp_path):
    base = server
    # Log in: the panel sends us to the login page first.
    page.goto(f"{base}/admin/")
    assert "/admin/login" in page.url
    shot(page, tmp_path, "01-login")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    assert page.inner_text("h1") == "Dashboard"
    shot(page, tmp_path, "02-dashboard")

    # A new partner: Timor-Leste's CERT, cleared for AMBER.
    page.click("text=Partners")
    page.click("text=Add partner")
    page.fill("#slug", "tlcert")
    page.fill("#name", "Timor-Leste CERT")
    page.fill("#country", "TL")
    page.fill("#sector", "national-cert")
    page.select_option("#clearance", "AMBER")
    shot(page, tmp_path, "03-partner-form")
    page.click("text=Save partner")
    page.wait_for_url(f"{base}/admin/partners/tlcert")
    assert "Partner tlcert created" in page.inner_text("main")
    shot(page, tmp_path, "03b-partner")

    # A trust group: tlcert explicitly, plus every partner in Myanmar (mmcert, cleared for GREEN only).
    page.click("text=Trust groups")
    page.click("text=Add trust group")
    page.fill("#slug", "asean-plus")
    page.fill("#name", "ASEAN plus observers")
    page.fill("#members", "tlcert")
    page.fill("#countries", "MM")
    page.click("text=Save trust group")
    page.wait_for_url(f"{base}/admin/groups/")
    row = page.locator("tr", has_text="asean-plus")
    assert "2: mmcert, tlcert" in row.inner_text()
    shot(page, tmp_path, "04-groups")

    # A collection the group reads and writes, up to AMBER.
    page.click("text=Collections")
    page.click("text=Add collection")
    page.fill("#alias", "ops")
    page.fill("#title", "ASEAN plus operations (TLP:AMBER)")
    page.select_option("#max_tlp", "AMBER")
    page.select_option("#default_tlp", "AMBER")
    page.fill("#readers", "group:asean-plus")
    page.fill("#writers", "group:asean-plus")
    page.click("text=Save collection")
    page.wait_for_url(f"{base}/admin/collections/")
    ops = page.locator("tr", has_text="ASEAN plus operations")
    collection_id = re.search(r"[0-9a-f-]{36}", ops.inner_text()).group(0)
    shot(page, tmp_path, "05-collections")

    # An API key for tlcert: the secret and ready-made examples are shown once.
    page.goto(f"{base}/admin/partners/tlcert")
    page.fill("#label", "taxii2-client test")
    page.click("text=Issue key")
    secret = page.inner_text("#secret").strip()
    assert secret.startswith("chub_") and collection_id in page.inner_text("table.data")
    assert f"{base}/dprk/collections/" in page.inner_text("#ex-python")
    assert f"{base}/dprk/" in page.inner_text("#ex-sentinel")
    shot(page, tmp_path, "06-key-issued")

    # The partner publishes an AMBER indicator and pulls it back with taxii2-client.
    url = f"{base}/dprk/collections/{collection_id}/"
    collection = Collection(url, user="tlcert", password=secret)
    indicator = f.indicator(7001, markings=[AMBER], id=f"indicator--{uuid.uuid4()}")
    status = collection.add_objects({"objects": [indicator]}, wait_for_completion=True)
    assert status.status == "complete" and status.success_count == 1, status.failures
    pulled = collection.get_objects()
    assert [o["id"] for o in pulled["objects"]] == [indicator["id"]]

    # The preview: mmcert reads the collection but is denied the AMBER object, with the reason.
    page.click("text=Preview")
    page.select_option("#partner", "mmcert")
    page.select_option("#collection", collection_id)
    page.click("#preview-form button[type=submit]")
    page.wait_for_selector("#preview-table")
    denied = page.locator(f'tr[data-object="{indicator["id"]}"]')
    assert denied.get_attribute("class") == "denied"
    assert "TLP:AMBER above partner clearance GREEN" in denied.inner_text()
    assert "receives 0 of 1 objects" in page.inner_text("#preview-summary")
    shot(page, tmp_path, "07-preview")

    # Who can see it: tlcert (originator) yes, mmcert no, a partner outside the group no.
    page.goto(f"{base}/admin/who?id={indicator['id']}")
    assert page.locator('tr[data-partner="tlcert"]').get_attribute("class") == "allowed"
    assert page.locator('tr[data-partner="mmcert"]').get_attribute("class") == "denied"
    assert "does not read collection" in page.locator('tr[data-partner="krcert"]').inner_text()
    shot(page, tmp_path, "08-who")

    page.goto(f"{base}/admin/audit")
    assert "key.create" in page.inner_text("table")
    shot(page, tmp_path, "09-audit")
    page.goto(f"{base}/admin/objects/{indicator['id']}")
    assert "administrator view: all objects" in page.inner_text("h1")
    shot(page, tmp_path, "10-object")
    assert page.problems == [], page.problems  # no CSP violation or script error on any page
    print(f"screenshots in {tmp_path / 'screenshots'}")
