"""What the panel's browser tests share: Debian's Chromium, headless, driven by playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from types import ModuleType
from typing import Any

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


def launch(api: ModuleType) -> Iterator[Any]:
    """A fresh headless Chromium, closed afterwards (a fixture's body: ``yield from launch(api)``)."""
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(api: ModuleType) -> Iterator[Any]:
    """A page of a fresh headless Chromium that collects console errors and page errors in ``page.problems``."""
    with api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = new_page(browser)
        try:
            yield page
        finally:
            page.context.close()
            browser.close()


def new_page(browser: Any) -> Any:
    """A page in a new context of ``browser``, collecting console and page errors in ``page.problems``."""
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.problems = []
    page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
    page.on("pageerror", lambda exc: page.problems.append(str(exc)))
    return page
