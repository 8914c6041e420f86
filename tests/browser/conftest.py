"""A real browser (headless Chromium driven by Playwright) on the live test server.

Chromium resolves no host name but the test server's, so a page that needed a
CDN or any outside resource would fail to render.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

OFFLINE_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs Chromium: `make system-deps` installs it")
        pytest.skip("Chromium is not installed (`make system-deps` installs it)")
    # Playwright's sync API keeps an event loop in this thread, and Django then refuses
    # ORM calls from it; the tests' own queries are synchronous, so allow them meanwhile.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=OFFLINE_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, live_server: Any) -> Iterator[Page]:
    # localhost, not 127.0.0.1: Chromium sends Secure cookies (session, CSRF) to it over HTTP.
    context = browser.new_context(base_url=live_server.url.replace("127.0.0.1", "localhost"))
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()
