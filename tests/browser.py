"""What the panel's browser tests share: Debian's Chromium, headless, driven by playwright."""

from __future__ import annotations

import os
import shutil
from types import ModuleType

import pytest

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> ModuleType:
    """playwright's sync API; the calling test module is skipped when playwright or Chromium is missing."""
    api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    return api
