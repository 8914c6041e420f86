"""The envelope, its status codes, the error handler and the OpenAPI helper."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.urls("tests.orchestration.urls")


@pytest.mark.django_db(transaction=True)
def test_a_successful_run_answers_with_the_envelope(client):
    response = client.post("/register/")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"success", "data", "duration", "metrics", "warnings", "request_id"}
    assert body["success"] is True
    assert body["data"] == ["web"]
    assert set(body["metrics"]) == {"validate", "create", "notify"}
    assert body["warnings"] == [
        {"step": "notify", "code": "service_unavailable", "message": "mail down", "details": {}}
    ]
    assert isinstance(body["duration"], float)


@pytest.mark.django_db
def test_a_failed_run_answers_with_the_error_status_and_no_data(client):
    response = client.post("/declined/")

    assert response.status_code == 402
    body = response.json()
    assert body["success"] is False
    assert "data" not in body
    assert body["error"] == {
        "step": "charge",
        "code": "payment_declined",
        "message": "declined",
        "details": {},
    }
    assert set(body["metrics"]) == {"validate", "charge"}
    assert Group.objects.count() == 0


@pytest.mark.django_db
def test_unparseable_json_gets_a_400_in_the_error_shape(client):
    response = client.post("/parse/", "{not json", content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "parse_error"
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_an_unexpected_exception_is_a_500_without_internals(client, caplog):
    response = client.get("/crash/")

    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "hunter2" not in response.content.decode()
    assert any("hunter2" in str(r.exc_info) for r in caplog.records if r.exc_info)


def test_the_schema_documents_the_envelope_each_error_and_the_pipeline():
    schema = SchemaGenerator().get_schema(request=None, public=True)

    operation = schema["paths"]["/register/"]["post"]
    assert set(operation["responses"]) == {"201", "400", "402"}
    success = operation["responses"]["201"]["content"]["application/json"]["schema"]
    assert success == {"$ref": "#/components/schemas/GroupNamesEnvelope"}
    error = operation["responses"]["402"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/ErrorEnvelope"}
    envelope = schema["components"]["schemas"]["GroupNamesEnvelope"]
    assert set(envelope["properties"]) == {
        "success",
        "data",
        "duration",
        "metrics",
        "warnings",
        "request_id",
        "trace_id",
    }
    assert "trace_id" not in envelope["required"]
    description = operation["description"]
    assert (
        "| 2 | `create` | critical | retried up to 2 attempts on ServiceUnavailable |"
        in description
    )
    assert "| 3 | `notify` | best effort | after commit |" in description
