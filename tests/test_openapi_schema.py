"""The OpenAPI schema states what the server enforces and documents every answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from orders.idempotency import WELL_FORMED_KEY
from orders.models import MAX_LINES

TOKEN_PATHS = (
    "/api/auth/token/",
    "/api/auth/token/refresh/",
    "/api/auth/token/verify/",
    "/api/auth/token/blacklist/",
)
ORCHESTRATED = {
    ("/api/orders/", "post"): "create_order",
    ("/api/orders/{id}/cancel/", "post"): "cancel_order",
    ("/api/orders/quote/", "post"): "quote",
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def component(schema: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    return schema["components"]["schemas"][reference["$ref"].rsplit("/", 1)[-1]]


def success_body(schema: dict[str, Any], path: str) -> dict[str, Any]:
    answer = schema["paths"][path]["post"]["responses"]["200"]
    return answer["content"]["application/json"]["schema"]


@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/token/refresh/"])
def test_the_token_endpoints_document_the_pair_they_answer(
    schema: dict[str, Any], path: str
) -> None:
    body = component(schema, success_body(schema, path))

    assert set(body["properties"]) == {"access", "refresh"}
    assert set(body["required"]) == {"access", "refresh"}


@pytest.mark.parametrize("path", ["/api/auth/token/verify/", "/api/auth/token/blacklist/"])
def test_verify_and_blacklist_document_their_empty_object(
    schema: dict[str, Any], path: str
) -> None:
    assert success_body(schema, path) == {"type": "object", "additionalProperties": False}


def test_no_description_carries_mermaid_source(schema: dict[str, Any]) -> None:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            assert "mermaid" not in operation.get("description", ""), (method, path)


@pytest.mark.parametrize(("where", "name"), ORCHESTRATED.items())
def test_an_orchestrated_endpoint_links_to_its_diagram_in_the_run_explorer(
    schema: dict[str, Any], admin_client: Client, where: tuple[str, str], name: str
) -> None:
    path, method = where
    description = schema["paths"][path][method]["description"]
    [link] = re.findall(r"\]\((/admin/[^)#]+)#([a-z_]+)\)", description)

    page = admin_client.get(link[0])

    assert link[1] == name
    assert page.status_code == 200
    assert f'<section class="pipeline" id="{name}">' in page.content.decode()


def test_the_idempotency_key_header_states_the_servers_rule(schema: dict[str, Any]) -> None:
    [header] = schema["paths"]["/api/orders/"]["post"]["parameters"]

    assert header["name"] == "Idempotency-Key"
    assert header["schema"]["pattern"] == WELL_FORMED_KEY.pattern
    assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)


@pytest.mark.parametrize("request_body", ["CreateOrderRequest", "QuoteRequest"])
def test_order_lines_are_one_to_the_limit_with_no_other_fields(
    schema: dict[str, Any], request_body: str
) -> None:
    body = schema["components"]["schemas"][request_body]
    items = body["properties"]["items"]

    assert (items["minItems"], items["maxItems"]) == (1, MAX_LINES)
    assert body["additionalProperties"] is False
    assert component(schema, items["items"])["additionalProperties"] is False


@pytest.mark.parametrize("path", ["/api/orders/", "/api/products/"])
def test_a_page_is_a_positive_integer_and_a_bad_one_a_documented_400(
    schema: dict[str, Any], path: str
) -> None:
    operation = schema["paths"][path]["get"]
    [page] = [p for p in operation["parameters"] if p["name"] == "page"]

    assert page["schema"] == {"type": "integer", "minimum": 1}
    assert {"200", "400", "404"} <= set(operation["responses"])


def test_a_string_field_refuses_nul_and_blank_in_the_schema_as_on_the_server(
    schema: dict[str, Any],
) -> None:
    token = schema["components"]["schemas"]["CreateOrderRequest"]["properties"]["payment_token"]
    # The schema's pattern is ECMA-262; Python reads this one the same way.
    pattern = re.compile(token["pattern"])

    assert pattern.search("tok_visa")
    assert pattern.search("  tok visa ")
    assert not pattern.search("   ")
    assert not pattern.search("tok\x00visa")
