"""The shopper's page in Debian's headless chromium, driven by Playwright (never a
downloaded browser), against the three real processes. Every test leaves a screenshot
in artifacts/screenshots/, and a failing one says what the page showed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.browser.shop import WAIT_MS, Shop
from tests.support import package_stack
from tests.support import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless and quiet: no GPU, no sandbox (root in CI), and none of the background
# requests to hosts this closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}

stack = package_stack()


@pytest.fixture(scope="package")
def browser(stack: Stack) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop running in this thread until it closes:
    # the stack (which resets the databases with anyio.run) is set up before it, and the
    # browser is gone before the next package's tests.
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: apt-get install chromium (deploy/test.sh does, as root)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shop(request: pytest.FixtureRequest, running: Stack, browser: Browser) -> Iterator[Shop]:
    """The page on a desktop (as a local file) or a phone (served by the gateway):
    `@pytest.mark.parametrize("shop", ["desktop-file", "phone-served"], indirect=True)`."""
    viewport, opened_as = getattr(request, "param", "desktop-served").split("-")
    context = browser.new_context(viewport=VIEWPORTS[viewport], is_mobile=viewport == "phone",
                                  has_touch=viewport == "phone")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    shop = Shop(page, running, opened_as, request.node.name)
    try:
        yield shop
    finally:
        shop.screenshot()  # the end of the scenario, or what the page showed when it failed
        context.close()
    assert not shop.unexpected(), f"console errors or refused requests: {shop.unexpected()}"
