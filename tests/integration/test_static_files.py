"""Static files under gunicorn alone, DEBUG off: the admin, Swagger UI and ReDoc are styled
without nginx in front (WhiteNoise), as on a platform's router or a cloud load balancer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import RunningServer, app_env, http_request, manage, running_gunicorn

pytestmark = pytest.mark.integration

STATIC_LINK = re.compile(r"""(?:href|src)=["'](/static/[^"']+)["']""")
CONTENT_TYPES = {".css": "text/css", ".js": "text/javascript"}


@pytest.fixture(scope="module")
def gunicorn_alone(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("static")
    env = app_env(database_url=database_url, STATIC_ROOT=str(folder / "static"))
    manage(env, "collectstatic", "--no-input", "--verbosity", "0")
    with running_gunicorn(env, workers=1, log_dir=folder) as server:
        yield server


@pytest.mark.parametrize("page", ["/admin/login/", "/documentation/", "/redoc/"])
def test_every_stylesheet_and_script_of_a_page_is_served(
    gunicorn_alone: RunningServer, page: str
) -> None:
    status, _, html = http_request(f"{gunicorn_alone.url}{page}")
    links = sorted(set(STATIC_LINK.findall(html.decode())))

    assert status == 200
    assert any(Path(link).suffix in CONTENT_TYPES for link in links), links
    for link in links:
        status, headers, body = http_request(f"{gunicorn_alone.url}{link}")
        assert status == 200, link
        assert body, link
        expected = CONTENT_TYPES.get(Path(link).suffix)
        if expected is not None:
            assert headers["Content-Type"].startswith(expected), (link, headers["Content-Type"])


def test_hashed_names_are_cached_for_ever_and_unknown_files_are_404(
    gunicorn_alone: RunningServer,
) -> None:
    _, _, html = http_request(f"{gunicorn_alone.url}/admin/login/")
    [stylesheet] = re.findall(r"/static/admin/css/base\.[0-9a-f]{12}\.css", html.decode())

    status, headers, _ = http_request(f"{gunicorn_alone.url}{stylesheet}")
    missing, _, _ = http_request(f"{gunicorn_alone.url}/static/admin/css/no-such-file.css")

    assert status == 200
    assert "immutable" in headers["Cache-Control"]
    assert missing == 404
