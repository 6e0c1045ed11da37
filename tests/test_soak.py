"""A one-minute soak (``HUB_TEST_SOAK_SECONDS``): 50 clients of every kind, no errors, no leak, records intact.

The longer run is ``make soak`` (tests/soak.py).
"""

from __future__ import annotations

import os

import pytest

from tests.soak import Soak

pytestmark = pytest.mark.slow


def test_soak_mixed_traffic_has_no_errors_or_leaks(database_url, tmp_path):
    seconds = float(os.environ.get("HUB_TEST_SOAK_SECONDS", "60"))
    report = Soak(database_url, tmp_path, seconds).run()
    assert report.requests["publish"] and report.delivered_pages, dict(report.requests)
    assert len(report.rss) >= seconds / 2, "the RSS sampler missed most of the run"
    assert not report.problems(), "\n".join(report.problems())
