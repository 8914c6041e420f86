"""OpenTelemetry: a span per run and per step under the Django request span.

The SDK's in-memory exporter collects the spans of real requests through the
API; opentelemetry-instrumentation-django makes the request span.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from rest_framework.test import APIClient

from orchestration import tracing
from orchestration.logging import RequestIdFilter
from orchestration.metrics import BUCKETS
from orchestration.models import RunRecord
from orders.models import Product
from orders.tests.support import PASSWORD, obtain_token, order_body

pytestmark = pytest.mark.django_db(transaction=True)


def _reset_global_tracer_provider() -> None:
    # The API lets a process set its provider once; tests need to undo it, as
    # OpenTelemetry's own test utilities do.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global_tracer_provider()
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        DjangoInstrumentor().uninstrument()
        provider.shutdown()
        _reset_global_tracer_provider()


@pytest.fixture
def client(django_user_model: Any) -> APIClient:
    django_user_model.objects.create_user("tess", "tess@example.com", PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {obtain_token(client, 'tess')}")
    return client


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_a_declined_order_is_a_run_span_with_a_span_per_step_under_the_request(exporter, client):
    lamp = Product.objects.create(sku="LAMP-2", name="Lamp", price="30.00", stock=5)
    exporter.clear()  # the token request's spans

    response = client.post(
        "/api/orders/", order_body((lamp, 1), token="tok_declined"), format="json"
    )

    assert response.status_code == 402
    spans = spans_by_name(exporter)
    [request] = [span for span in spans.values() if span.kind == SpanKind.SERVER]
    run = spans["orchestrator create_order"]
    assert run.parent.span_id == request.context.span_id
    assert run.attributes["orchestration.outcome"] == "failure"
    assert run.attributes["orchestration.failing_step"] == "charge_payment"
    assert run.attributes["orchestration.error_code"] == "payment_declined"
    assert run.status.status_code == StatusCode.ERROR
    steps = sorted(
        (span for name, span in spans.items() if name.startswith("step ")),
        key=lambda span: span.start_time,
    )
    assert [span.name.removeprefix("step ") for span in steps] == [
        "validate_order",
        "check_permissions",
        "claim_idempotency_key",
        "reserve_stock",
        "create_order",
        "charge_payment",
    ]
    assert all(span.parent.span_id == run.context.span_id for span in steps)
    charge = spans["step charge_payment"]
    assert dict(charge.attributes) == {
        "orchestration.step": "charge_payment",
        "orchestration.critical": True,
        "orchestration.attempts": 1,
        "orchestration.outcome": "failed",
        "orchestration.error_code": "payment_declined",
    }
    assert charge.status.status_code == StatusCode.ERROR
    assert spans["step claim_idempotency_key"].attributes["orchestration.outcome"] == "skipped"
    # Steps lie inside their run, and the run inside its request.
    assert request.start_time <= run.start_time <= steps[0].start_time
    assert steps[-1].end_time <= run.end_time <= request.end_time

    trace_id = format(run.context.trace_id, "032x")
    assert response.json()["trace_id"] == trace_id
    record = RunRecord.objects.get(request_id=response.json()["request_id"])
    assert record.trace_id == trace_id


def test_after_commit_steps_trace_and_attempts_count(exporter, client, settings):
    settings.PAYMENT_GATEWAY = "orders.payments.FakeGateway"
    lamp = Product.objects.create(sku="LAMP-3", name="Lamp", price="30.00", stock=5)
    exporter.clear()

    response = client.post("/api/orders/", order_body((lamp, 1)), format="json")

    assert response.status_code == 201
    spans = spans_by_name(exporter)
    run = spans["orchestrator create_order"]
    assert run.attributes["orchestration.outcome"] == "success"
    confirmation = spans["step send_confirmation"]
    assert confirmation.parent.span_id == run.context.span_id
    assert confirmation.attributes["orchestration.critical"] is False
    assert confirmation.start_time >= spans["step mark_paid"].end_time
    assert response.json()["trace_id"] == format(run.context.trace_id, "032x")


def test_log_records_carry_the_trace_id(exporter):
    record = logging.LogRecord("orders", logging.WARNING, __file__, 1, "message", (), None)
    with trace.get_tracer("tests").start_as_current_span("work") as span:
        RequestIdFilter().filter(record)

    assert record.trace_id == format(span.get_span_context().trace_id, "032x")


def test_without_a_configured_provider_nothing_is_traced(client):
    lamp = Product.objects.create(sku="LAMP-4", name="Lamp", price="30.00", stock=5)
    assert not tracing.enabled()

    response = client.post(
        "/api/orders/", order_body((lamp, 1), token="tok_declined"), format="json"
    )

    assert "trace_id" not in response.json()
    record = logging.LogRecord("orders", logging.WARNING, __file__, 1, "message", (), None)
    RequestIdFilter().filter(record)
    assert record.trace_id == "-"


def test_tracing_can_be_turned_off(exporter, client, settings):
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "TRACING": False}
    lamp = Product.objects.create(sku="LAMP-6", name="Lamp", price="30.00", stock=5)
    exporter.clear()

    response = client.post(
        "/api/orders/", order_body((lamp, 1), token="tok_declined"), format="json"
    )

    assert "trace_id" not in response.json()
    names = [span.name for span in exporter.get_finished_spans()]
    assert names  # the request itself is still traced...
    assert not [name for name in names if name.startswith(("orchestrator ", "step "))]


def test_step_histogram_buckets_link_to_the_step_span(exporter, client):
    lamp = Product.objects.create(sku="LAMP-5", name="Lamp", price="30.00", stock=5)
    exporter.clear()
    client.post("/api/orders/", order_body((lamp, 1), token="tok_declined"), format="json")
    charge = spans_by_name(exporter)["step charge_payment"]

    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response["Content-Type"].startswith("application/openmetrics-text")
    exemplar = (
        f'# {{span_id="{charge.context.span_id:016x}",trace_id="{charge.context.trace_id:032x}"}}'
    )
    [line] = [
        line
        for line in response.content.decode().splitlines()
        if line.startswith("orchestrator_step_duration_seconds_bucket{")
        and 'orchestrator="create_order"' in line
        and 'step="charge_payment"' in line
        and 'outcome="failed"' in line
        and exemplar in line
    ]
    # The exemplar sits on the bucket the engine counted the step in: the first
    # whose upper bound holds the value.
    seconds = float(line.split(exemplar)[1].split()[0])
    index = BUCKETS.index(float(line.split('le="')[1].split('"')[0]))
    assert seconds <= BUCKETS[index]
    assert index == 0 or seconds > BUCKETS[index - 1]
