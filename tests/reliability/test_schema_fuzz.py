"""Fuzz the live API from its own OpenAPI schema (schemathesis), authenticated with a real JWT.

The server is pytest-django's live server (a real HTTP server on a loopback
port, over the test database); the schema is the one it serves at
``/api/schema/``. Every generated request, valid or not, must get an answer
that is not a 5xx and that conforms to the schema: a documented status, the
documented content type, headers and body shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.failures import FailureGroup

from orders.models import Product

EXAMPLES = 20
USERNAME, PASSWORD = "fuzzer", "fuzzing-password-long-enough"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(live_server: Any, transactional_db: None, django_user_model: Any) -> Any:
    django_user_model.objects.create_user(USERNAME, "fuzzer@example.com", PASSWORD)
    for number in range(3):
        Product.objects.create(
            sku=f"FUZZ-{number}", name=f"Fuzz product {number}", price="5.00", stock=1000
        )
    return schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")


@pytest.fixture
def auth_headers(api_schema: Any, live_server: Any) -> dict[str, str]:
    cache.clear()  # the token endpoint's throttle counts every earlier test's requests
    response = requests.post(
        f"{live_server.url}/api/auth/token/",
        json={"username": USERNAME, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access']}"}


AUTH_PREFIX = "/api/auth/"


def fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str], checks: list[Any]) -> str:
    """Run one operation's generated cases; the failure report, or "" when all passed."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=checks, timeout=10)

    try:
        check()
    except (Exception, FailureGroup) as exc:  # collected, so that one run reports them all
        return f"{operation.label} ({mode.value}): {exc}"
    return ""


def fuzz_all(
    schema: Any,
    headers: dict[str, str],
    checks: list[Any],
    select: Callable[[Any, GenerationMode], bool],
) -> None:
    operations = [result.ok() for result in schema.get_all_operations()]
    selected = [
        (operation, mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if select(operation, mode)
    ]
    assert selected, "the selection matches no operation of the schema"
    failures = [fuzz(operation, mode, headers, checks) for operation, mode in selected]
    failures = [failure for failure in failures if failure]
    assert not failures, "\n\n".join(failures)


def is_auth(operation: Any) -> bool:
    return operation.path.startswith(AUTH_PREFIX)


def has_path_parameters(operation: Any) -> bool:
    return "{" in operation.path


def test_no_operation_answers_with_a_server_error(
    api_schema: Any, auth_headers: dict[str, str]
) -> None:
    fuzz_all(api_schema, auth_headers, [not_a_server_error], lambda operation, mode: True)


def test_responses_conform_to_the_schema(api_schema: Any, auth_headers: dict[str, str]) -> None:
    assert any(
        result.ok().label == "POST /api/orders/" for result in api_schema.get_all_operations()
    )
    fuzz_all(
        api_schema,
        auth_headers,
        CHECKS,
        lambda operation, mode: (
            not is_auth(operation)
            and not (mode is GenerationMode.NEGATIVE and has_path_parameters(operation))
        ),
    )


def test_auth_endpoints_document_their_errors(
    api_schema: Any, auth_headers: dict[str, str]
) -> None:
    fuzz_all(api_schema, auth_headers, CHECKS, lambda operation, mode: is_auth(operation))


def test_malformed_ids_answer_in_the_error_shape(
    api_schema: Any, auth_headers: dict[str, str]
) -> None:
    fuzz_all(
        api_schema,
        auth_headers,
        CHECKS,
        lambda operation, mode: mode is GenerationMode.NEGATIVE and has_path_parameters(operation),
    )
