"""The documentation site builds strictly and draws its diagrams offline, in a real browser.

Chromium resolves no host name but the local server's, so a diagram whose Mermaid had to come
from a CDN would stay Mermaid text.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import browser  # noqa: F401 (the fixture)
from tests.docs.blocks import ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).parent / "mkdocs"
    built = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(directory)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)},
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


def test_the_pipelines_are_drawn_as_pictures(browser: Browser, site: str):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{site}/example-project/")
        page.wait_for_function("document.querySelectorAll('pre.mermaid').length === 0")

        drawn = page.locator("div.mermaid")
        assert drawn.count() == 4
        for index in range(drawn.count()):
            box = drawn.nth(index).bounding_box()
            assert box is not None
            assert box["height"] > 200  # a flowchart, not a line of text
    finally:
        page.close()
