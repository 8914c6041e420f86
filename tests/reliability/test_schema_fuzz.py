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
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.core.failures import FailureGroup

from orders.models import Product

EXAMPLES = 100
USERNAME, PASSWORD = "fuzzer", "fuzzing-password-long-enough"
load_all_checks()
#: Every check schemathesis has: conformance of statuses, content types, headers and
#: bodies, and the data-acceptance checks (a schema-valid request is not refused with a
#: 400, a schema-invalid one is), missing required headers, unsupported methods, auth.
EVERY_CHECK = CHECKS.get_all()


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # Every login attempt, a failed one too, hashes a password: the real hasher is slow.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def catalogue(transactional_db: None) -> list[int]:
    return [
        Product.objects.create(
            sku=f"FUZZ-{number}", name=f"Fuzz product {number}", price="5.00", stock=1000
        ).pk
        for number in range(3)
    ]


@pytest.fixture
def api_schema(live_server: Any, catalogue: list[int], django_user_model: Any) -> Any:
    django_user_model.objects.create_user(USERNAME, "fuzzer@example.com", PASSWORD)
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    # A well-formed order can still be declined by the card processor: a 402 is an
    # answer to valid data (no schema can say which cards are good), like 404 and 409.
    schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=[*PositiveDataAcceptanceConfig().expected_statuses, "402"]
    )
    return schema


def from_the_catalogue(catalogue: list[int]) -> Callable[[Any], Any]:
    """Valid order and quote bodies name products of the catalogue, each once: the rules
    a schema cannot state (which ids exist, one line per product). Every other part of
    the generated body is left as generated."""

    def shape(case: Any) -> Any:
        body = case.body
        if isinstance(body, dict) and isinstance(body.get("items"), list):
            body["items"] = body["items"][: len(catalogue)]
            for line, product in zip(body["items"], catalogue, strict=False):
                line["product"] = product
        return case

    return shape


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


def fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    checks: list[Any],
    catalogue: list[int],
) -> str:
    """Run one operation's generated cases; the failure report, or "" when all passed."""
    strategy = operation.as_strategy(generation_mode=mode)
    if mode is GenerationMode.POSITIVE:
        strategy = strategy.map(from_the_catalogue(catalogue))

    @given(case=strategy)
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
    catalogue: list[int],
    select: Callable[[Any, GenerationMode], bool],
) -> None:
    """Every check on the generated cases of the selected operations and modes."""
    operations = [result.ok() for result in schema.get_all_operations()]
    selected = [
        (operation, mode)
        for operation in operations
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if select(operation, mode)
    ]
    assert selected, "the selection matches no operation of the schema"
    failures = [
        fuzz(operation, mode, headers, EVERY_CHECK, catalogue) for operation, mode in selected
    ]
    failures = [failure for failure in failures if failure]
    assert not failures, "\n\n".join(failures)


def is_auth(operation: Any) -> bool:
    return operation.path.startswith(AUTH_PREFIX)


def has_path_parameters(operation: Any) -> bool:
    return "{" in operation.path


# The three tests below split every operation in both modes between them.


def test_responses_conform_to_the_schema(
    api_schema: Any, auth_headers: dict[str, str], catalogue: list[int]
) -> None:
    assert any(
        result.ok().label == "POST /api/orders/" for result in api_schema.get_all_operations()
    )
    fuzz_all(
        api_schema,
        auth_headers,
        catalogue,
        lambda operation, mode: (
            not is_auth(operation)
            and not (mode is GenerationMode.NEGATIVE and has_path_parameters(operation))
        ),
    )


def test_auth_endpoints_document_their_errors(
    api_schema: Any, auth_headers: dict[str, str], catalogue: list[int]
) -> None:
    fuzz_all(api_schema, auth_headers, catalogue, lambda operation, mode: is_auth(operation))


def test_malformed_ids_answer_in_the_error_shape(
    api_schema: Any, auth_headers: dict[str, str], catalogue: list[int]
) -> None:
    fuzz_all(
        api_schema,
        auth_headers,
        catalogue,
        lambda operation, mode: mode is GenerationMode.NEGATIVE and has_path_parameters(operation),
    )


# -- hostile values in every field, parameter and header of every operation -----------

#: JSON texts (not Python values): some cannot be produced by a JSON encoder at all.
HOSTILE_JSON = [
    r'"\ud800"',  # a lone surrogate
    r'"\udfff\ud800"',
    r'"a\u0000b"',  # control characters
    r'"\u001b[2J\r\n\t"',
    r'"\u202eevil"',  # right-to-left override
    '"' + "\U0001d54f" * 2000 + '"',
    '"' + " " * 20_000 + '"',
    '"\'; DROP TABLE orders_order; --"',
    '"%s%n%x"',
    "9" * 5000,  # past Python's int-to-str limit
    "1e999",  # past a float
    "-1e999",
    str(2**63),
    str(-(2**63) - 1),
    "NaN",
    "Infinity",
    "1.5",
    "true",
    "null",
    "[]",
    "{}",
    "[" * 100 + "]" * 100,
]
HOSTILE_HEADERS = ["\x7f", "a" * 8000, "\u00ff\u00fe", "Bearer", "Bearer a b c"]


def operations_of(schema_url: str) -> list[tuple[str, str, dict[str, Any]]]:
    document = requests.get(schema_url, params={"format": "json"}, timeout=10).json()
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def body_fields(operation: dict[str, Any], components: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return list(schema.get("properties", {})) or ["value"]


def assert_answered(response: requests.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    body = response.json()
    assert isinstance(body, dict), what
    if response.status_code >= 400 and "success" in body:
        assert body["success"] is False, what


@pytest.mark.django_db(transaction=True)
def test_hostile_values_never_get_a_server_error(
    api_schema: Any, live_server: Any, auth_headers: dict[str, str]
) -> None:
    schema_url = f"{live_server.url}/api/schema/"
    document = requests.get(schema_url, params={"format": "json"}, timeout=10).json()
    components = document["components"]["schemas"]
    operations = operations_of(schema_url)
    assert {path for _, path, _ in operations} >= {"/api/auth/token/", "/api/orders/"}
    session = requests.Session()
    for method, path, operation in operations:
        url = live_server.url + path.replace("{id}", "1")
        headers = {**auth_headers, "Content-Type": "application/json"}
        for value in HOSTILE_JSON:
            if method == "POST":
                fields = body_fields(operation, components)
                body = "{" + ", ".join(f'"{field}": {value}' for field in fields) + "}"
                as_key = "{" + value + ": 1}" if value.startswith('"') else body
                for text in (body, as_key, value):
                    cache.clear()  # the token endpoint's throttle would answer before parsing
                    response = session.post(url, data=text.encode(), headers=headers, timeout=10)
                    assert_answered(response, f"{method} {path} {text[:60]!r}")
            else:
                response = session.get(url, params={"page": value}, headers=headers, timeout=10)
                assert_answered(response, f"{method} {path} ?page={value[:60]!r}")
        for header in HOSTILE_HEADERS:
            for name in ("Authorization", "Idempotency-Key", "X-Request-ID"):
                hostile = {**headers, name: header.encode("latin-1")}
                response = session.request(method, url, data=b"{}", headers=hostile, timeout=10)
                assert_answered(response, f"{method} {path} {name}: {header[:20]!r}")
