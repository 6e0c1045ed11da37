"""End to end in headless Chromium: an analyst searches the objects by value and by name and opens an object.

The real server (`cti-hub serve`) runs as a subprocess; the browser is Debian's Chromium driven by
Playwright (tests/browser.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub import ingest
from hub import models as m
from tests import factories as f
from tests.browser import open_page, require_chromium
from tests.live import serve_command
from tests.panel import PASSWORD
from tests.worlds import panel_world

pytestmark = pytest.mark.slow

playwright_api = require_chromium()

BEACON = f.indicator(801, name="Andariel beacon domain", pattern="[domain-name:value = 'cdn.update-check.example']")
PAGE_URL = f.indicator(802, name="Kimsuky phishing page", pattern="[url:value = 'https://login.update-check.example/']")
OTHER = f.indicator(803, name="APT37 staging server", pattern="[ipv4-addr:value = '198.51.100.83']")


@pytest.fixture
def server(make_app, settings, tmp_path):
    """The panel's test world plus three indicators, served by `cti-hub serve` on a free port."""
    hub = make_app().extensions["cti_hub"]
    world = panel_world(hub)
    with hub.session(write=False) as s:
        kr = s.execute(select(m.Partner.id).where(m.Partner.slug == "krcert")).scalar_one()
    beacon_v2 = {**BEACON, "modified": "2025-02-01T00:00:00.000Z", "revoked": True}
    result = ingest.ingest_envelope(hub, kr, world["ids"]["shared"], [BEACON, PAGE_URL, OTHER, beacon_v2])
    assert not result.failures, result.failures
    yield from serve_command(settings, tmp_path)


@pytest.fixture
def page():
    yield from open_page(playwright_api)


def rows(page) -> list[str]:
    return page.eval_on_selector_all("#object-list tbody tr", "rows => rows.map(r => r.dataset.object)")


def test_search_by_value_and_name_then_open_the_object(server, page):
    base = server
    page.goto(f"{base}/admin/objects/")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/objects/")

    # A domain finds the indicator of the domain and the URL under it, with name and value beside the id.
    page.fill("#object-search input[name=text]", "update-check.example")
    page.click("#object-search button[type=submit]")
    page.wait_for_selector("#object-list")
    assert set(rows(page)) == {BEACON["id"], PAGE_URL["id"]}
    beacon = page.locator(f'#object-list tr[data-object="{BEACON["id"]}"]').first
    assert "Andariel beacon domain" in beacon.locator("td.name").inner_text()
    assert "cdn.update-check.example" in beacon.locator("td.values").inner_text()

    # Exact: only the full value; then a word of a name, ignoring case.
    page.fill("#object-search input[name=text]", "cdn.update-check.example")
    page.check("#object-search input[name=exact]")
    page.click("#object-search button[type=submit]")
    page.wait_for_selector("#object-list")
    assert set(rows(page)) == {BEACON["id"]}
    page.uncheck("#object-search input[name=exact]")
    page.fill("#object-search input[name=text]", "PHISHING")
    page.click("#object-search button[type=submit]")
    page.wait_for_selector("#object-list")
    assert rows(page) == [PAGE_URL["id"]]
    page.fill("#object-search input[name=text]", "no-such-value.example")
    page.click("#object-search button[type=submit]")
    assert "No stored object matches" in page.inner_text("main")

    # The object page: summary, both versions with their state, no withdrawal yet, reasons naming aliases.
    page.goto(f"{base}/admin/objects/?text=andariel")
    page.click(f'#object-list tr[data-object="{BEACON["id"]}"] a')
    page.wait_for_selector("#summary")
    summary = page.inner_text("#summary")
    assert "Andariel beacon domain" in summary and "revoked by its originator" in summary
    assert "cdn.update-check.example" in summary and "krcert" in summary
    assert "superseded by a newer version" in page.inner_text(f'#versions tr[data-version="{BEACON["modified"]}"]')
    assert "revoked" in page.inner_text('#versions tr[data-version="2025-02-01T00:00:00.000Z"]')
    assert "No partner has lost this object" in page.inner_text("main")
    assert "dprk/shared" in page.inner_text("#versions")
    assert page.problems == [], page.problems  # no CSP violation or script error
