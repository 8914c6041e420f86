"""The OpenAPI description of the orders endpoints."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_create_order_documents_pipeline_statuses_and_header(schema: dict[str, Any]) -> None:
    create = schema["paths"]["/api/orders/"]["post"]

    assert {"201", "400", "401", "402", "409", "503"} <= set(create["responses"])
    assert "| 6 | `charge_payment` | critical | retried up to 3 attempts" in create["description"]
    assert "| 8 | `send_confirmation` | best effort |" in create["description"]
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]


def test_cancel_order_documents_its_pipeline(schema: dict[str, Any]) -> None:
    cancel = schema["paths"]["/api/orders/{id}/cancel/"]["post"]

    assert {"200", "404", "409"} <= set(cancel["responses"])
    assert "`restock` | critical" in cancel["description"]
    assert "`notify_cancellation` | best effort" in cancel["description"]
