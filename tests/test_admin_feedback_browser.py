"""End to end in headless Chromium: an administrator opens an indicator partners sighted, reads its sightings
timeline (SVG drawn by the server, no script) and revokes it for its originator.

The real server (`cti-hub serve`) runs as a subprocess; the browser is Debian's Chromium driven by
Playwright (tests/browser.py).
"""

from __future__ import annotations

import orjson
import pytest
from sqlalchemy import select

from hub import ingest
from hub import models as m
from tests import factories as f
from tests.browser import open_page, require_chromium
from tests.live import serve_command
from tests.panel import PASSWORD
from tests.worlds import feedback_world

pytestmark = pytest.mark.slow

playwright_api = require_chromium()


@pytest.fixture
def server(make_app, settings, tmp_path):
    """The feedback world, with three partners' sightings of krcert's first indicator and one report."""
    hub = make_app().extensions["cti_hub"]
    world = feedback_world(hub)
    target = world["kr"][0]["id"]
    for n, (slug, count, day) in enumerate((("cisa", 2, "03"), ("mycert", 3, "03"), ("singcert", 4, "06")), 1):
        seen = f.sighting(n, target, slug, count=count, last_seen=f"2024-06-{day}T12:00:00.000Z")
        result = ingest.ingest_envelope(hub, world["pks"][slug], world["feedback"], [seen])
        assert not result.failures, result.failures
    result = ingest.ingest_envelope(hub, world["pks"]["mycert"], world["feedback"], [f.false_positive(1, target)])
    assert not result.failures, result.failures
    for base in serve_command(settings, tmp_path):
        yield base, hub, world


@pytest.fixture
def page():
    yield from open_page(playwright_api)


def test_open_an_object_see_its_sightings_timeline_and_revoke_it(server, page):
    base, hub, world = server
    target = world["kr"][0]["id"]
    page.goto(f"{base}/admin/objects/{target}")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/objects/{target}")

    chart = page.locator("svg.timeline")
    assert chart.is_visible() and chart.get_attribute("data-total") == "9"
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not an empty box
    bars = page.eval_on_selector_all(
        "svg.timeline rect.bar", "bars => bars.map(b => [b.dataset.start, Number(b.dataset.count), b.getBBox().height])"
    )
    assert [(d, n) for d, n, _ in bars] == [("2024-06-03", 5), ("2024-06-04", 0), ("2024-06-05", 0), ("2024-06-06", 4)]
    assert bars[0][2] > bars[3][2] > 0 and bars[1][2] == 0  # heights follow the counts
    # The bar's own tooltip says what it counts.
    assert page.locator("svg.timeline rect.bar").first.locator("title").text_content() == "2024-06-03: 5 sightings"
    assert page.locator("#false-positives tr[data-reporter=mycert]").count() == 1
    assert page.locator("#sightings tbody tr").count() == 3

    # Revoke for krcert: unticked, it is refused with the reason; ticked, the revoked version is published.
    revoke = page.locator("form.revoke").first
    revoke.locator("button[type=submit]").click()
    page.wait_for_selector("#revise-error")
    assert "tick the confirmation first" in page.inner_text("#revise-error")
    # The refusal is a 400 page (the browser logs its status); nothing else went wrong so far.
    assert page.problems == ["Failed to load resource: the server responded with a status of 400 (BAD REQUEST)"]
    page.problems.clear()
    page.locator("form.revoke input[name=confirm]").first.check()
    page.locator("form.revoke button[type=submit]").first.click()
    page.wait_for_url(f"{base}/admin/objects/{target}")
    page.wait_for_selector("#summary")
    assert "Revoked: krcert's version" in page.inner_text("main")
    assert "revoked by its originator" in page.inner_text("#summary")
    assert page.locator("form.revoke").count() == 0
    assert page.problems == [], page.problems  # no CSP violation or script error

    with hub.session(write=False) as s:
        raws = list(s.scalars(select(m.ObjectVersion.raw).where(m.ObjectVersion.stix_id == target)))
        events = list(s.scalars(select(m.AuditEvent.actor).where(m.AuditEvent.action == "object.revoke")))
    assert sorted(orjson.loads(r).get("revoked", False) for r in raws) == [False, True]
    assert events == ["alice"]
