"""Operational endpoints and the error pages of the API."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from orchestration.context import current_request_id
from orchestration.views import server_error


def test_health_answers_without_touching_the_database(client):
    # No django_db mark: pytest-django fails the test if the view queries the database.
    response = client.get("/health/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_checks_the_database(client):
    response = client.get("/ready/")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.mark.django_db
def test_an_unknown_api_path_is_a_404_in_the_error_shape(client):
    response = client.get("/api/orders/-1/", headers={"X-Request-ID": "trace-404-0001"})

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "success": False,
        "error": {"step": None, "code": "not_found", "message": "Not found.", "details": {}},
        "request_id": "trace-404-0001",
    }


@pytest.mark.django_db
def test_an_unknown_page_outside_the_api_is_djangos_html_404(client):
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_crash_under_the_api_is_a_500_naming_the_request_id_without_internals():
    token = current_request_id.set("trace-500-0001")
    try:
        response = server_error(RequestFactory().get("/api/orders/"))
    finally:
        current_request_id.reset(token)

    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert b"trace-500-0001" in response.content
    assert b"internal_error" in response.content


def test_a_crash_outside_the_api_is_djangos_plain_500_page():
    response = server_error(RequestFactory().get("/admin/"))

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
