"""Swagger UI and ReDoc render in a real browser from local files only (no CDN).

Chromium runs headless with every host name except the test server's mapped
to nothing, so a page that needed a CDN would fail to render.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="Chromium is not installed (`make system-deps` installs it; CI must have it)",
    ),
    pytest.mark.django_db(transaction=True),
]


def render(url: str) -> str:
    """The DOM after scripts ran, from headless Chromium with no outside network."""
    assert CHROMIUM, "CI needs Chromium: run `make system-deps`"
    with tempfile.TemporaryDirectory() as profile:
        completed = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return completed.stdout


def local(live_server) -> str:
    return live_server.url.replace("127.0.0.1", "localhost")


def test_swagger_ui_renders_every_operation_from_local_assets(live_server):
    dom = render(f"{local(live_server)}/documentation/")

    assert 'class="swagger-ui' in dom
    assert "Orchestrated services API" in dom
    assert "/api/auth/token/" in dom
    assert 'class="opblock-summary-path"' in dom


def test_redoc_renders_from_local_assets(live_server):
    dom = render(f"{local(live_server)}/redoc/")

    assert "Orchestrated services API" in dom
    assert "/api/auth/token/" in dom
