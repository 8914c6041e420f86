"""The WSGI entry point answers the error envelope even when Django's handler never ran."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from django.core.signals import request_started
from django.db import OperationalError

from config.wsgi import application


def call(path: str) -> tuple[str, dict[str, str], Any]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": BytesIO(b""),
        "wsgi.errors": BytesIO(),
    }
    body = b"".join(application(environ, start_response))
    return seen["status"], seen["headers"], json.loads(body) if body else None


@pytest.fixture
def failing_request_start() -> Iterator[list[BaseException]]:
    raised: list[BaseException] = []

    def receiver(**kwargs: Any) -> None:
        raise raised[0]

    request_started.connect(receiver, dispatch_uid="test-failing-request-start")
    yield raised
    request_started.disconnect(dispatch_uid="test-failing-request-start")


@pytest.mark.django_db
def test_a_database_error_before_the_handler_is_a_json_503(failing_request_start: Any) -> None:
    failing_request_start.append(OperationalError("the connection is lost"))
    status, headers, body = call("/api/products/")
    assert status.startswith("503")
    assert headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == "database_unavailable"
    assert body["success"] is False


@pytest.mark.django_db
def test_any_other_error_before_the_handler_is_a_json_500(failing_request_start: Any) -> None:
    failing_request_start.append(RuntimeError("a receiver is broken"))
    status, headers, body = call("/ready/")
    assert status.startswith("500")
    assert headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == "internal_error"


@pytest.mark.django_db
def test_without_a_failure_django_answers() -> None:
    status, _, _ = call("/health/")
    assert status.startswith("200")
