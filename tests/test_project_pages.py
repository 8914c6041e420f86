"""What a newcomer meets around the API: titles, summaries, the favicon, offline ReDoc."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.auth.models import User
from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served():
    response = Client().get("/favicon.ico")

    assert response.status_code == 200
    assert response["Content-Type"] == "image/vnd.microsoft.icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"
    assert "max-age" in response["Cache-Control"]


def test_redoc_needs_no_font_cdn_and_forbids_other_hosts():
    response = Client().get("/redoc/")
    html = response.content.decode()

    assert response.status_code == 200
    assert "fonts.googleapis.com" not in html
    assert "fonts.gstatic.com" not in html
    assert "/static/drf_spectacular_sidecar/redoc/" in html
    assert "img-src 'self' data:" in response["Content-Security-Policy"]


def test_every_token_endpoint_has_a_summary_in_the_schema():
    schema = yaml.safe_load(Client().get("/api/schema/").content)

    summaries = {
        path: schema["paths"][path]["post"].get("summary")
        for path in schema["paths"]
        if path.startswith("/api/auth/")
    }

    assert len(summaries) == 4
    assert all(summaries.values()), summaries


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/api/orders/", "Your orders"),
        ("/api/products/", "Products on sale"),
        ("/api/auth/token/", "Obtain an access and a refresh token"),
    ],
)
def test_browsable_api_pages_have_readable_titles(path: str, title: str):
    user = User.objects.create_user("frank", "frank@example.com", "a-long-password-for-frank")
    client = Client()
    client.force_login(user)

    response = client.get(path, HTTP_ACCEPT="text/html")

    assert response.status_code in {200, 405}
    page_title = re.search(r"<title>(.*?)</title>", response.content.decode(), flags=re.S)
    assert page_title is not None
    assert page_title.group(1).strip().startswith(title)
    assert "List Create" not in response.content.decode()
