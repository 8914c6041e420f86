"""Django REST framework glue: the envelope response, its schema, the error handler."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from orchestration.extras import require

require("drf", "rest_framework", "drf_spectacular", feature="orchestration.drf")

# ruff: noqa: E402 (the imports that need the extra follow the check)
from django.urls import NoReverseMatch, reverse
from django.utils.functional import lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from orchestration import registry
from orchestration.engine import BaseOrchestrator
from orchestration.envelope import error_body, typed_error_body
from orchestration.errors import classify
from orchestration.result import OrchestratorResult
from orchestration.steps import flag_words


def envelope(result: OrchestratorResult[Any]) -> dict[str, Any]:
    """The JSON body of an orchestrated endpoint's response."""
    body: dict[str, Any] = {"success": result.success}
    if result.success:
        body["data"] = result.data
    else:
        body["error"] = result.error.as_dict() if result.error else None
    body["duration"] = result.duration_ms
    body["metrics"] = result.metrics
    body["warnings"] = [warning.as_dict() for warning in result.warnings]
    if result.success:
        body["queued"] = result.queued
    body["request_id"] = result.request_id
    if result.trace_id is not None:
        body["trace_id"] = result.trace_id
    return body


def envelope_response(
    result: OrchestratorResult[Any], *, success_status: int = status.HTTP_200_OK
) -> Response:
    """Render a result: ``success_status`` on success, the error's status otherwise."""
    code = success_status if result.success else result.status_code
    return Response(envelope(result), status=code)


# -- errors outside pipelines (authentication, parsing, throttling, crashes) ----------


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, answering with the same error shape as orchestrated endpoints.

    DRF's own exceptions keep DRF's statuses and headers (``WWW-Authenticate``,
    ``Retry-After``). Anything else goes through ``errors.classify``: a typed
    error raised in a view gets its own status, Django's and the database's
    errors their typed twin, the rest a 500 without internals. Either way the
    request's atomic block (``ATOMIC_REQUESTS``) is rolled back, as DRF does.
    """
    if isinstance(exc, exceptions.APIException):
        response = drf_exception_handler(exc, context)
        assert response is not None  # DRF's handler answers every APIException
        response.data = error_body(*api_exception_error(exc))
        return response
    view = context.get("view")
    typed = classify(exc, where=f"view {type(view).__name__}")
    set_rollback()
    return Response(typed_error_body(typed), status=typed.status)


def api_exception_error(exc: exceptions.APIException) -> tuple[str, str, dict[str, Any]]:
    """The code, message and details of a DRF exception."""
    detail = exc.detail
    if isinstance(exc, exceptions.ValidationError):
        details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return "validation_failed", "The input is invalid.", details
    if isinstance(detail, dict):  # simplejwt: {"detail": ..., "code": ..., "messages": ...}
        code = str(detail.get("code", exc.default_code))
        return code, str(detail.get("detail", exc.default_detail)), {}
    return str(getattr(detail, "code", None) or exc.default_code), str(detail), {}


# -- OpenAPI (drf-spectacular) --------------------------------------------------------


TRACE_ID_HELP = "The OpenTelemetry trace id of the run (present when tracing is on)."


class StepErrorSerializer(serializers.Serializer):
    step = serializers.CharField(
        allow_null=True, help_text="The failing step (null outside pipelines)."
    )
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. payment_declined.")
    message = serializers.CharField()
    details = serializers.DictField(help_text="Field errors or other structured details.")


class ErrorEnvelopeSerializer(serializers.Serializer):
    success = serializers.BooleanField(help_text="Always false.")
    error = StepErrorSerializer()
    duration = serializers.FloatField(required=False, help_text="Total milliseconds.")
    metrics = serializers.DictField(
        child=serializers.FloatField(), required=False, help_text="Milliseconds per step that ran."
    )
    warnings = StepErrorSerializer(many=True, required=False)
    request_id = serializers.CharField()
    trace_id = serializers.CharField(required=False, help_text=TRACE_ID_HELP)


ERROR_DESCRIPTIONS = {
    400: "Invalid input: `error.details` holds the field errors.",
    401: "No token, or an expired or invalid one.",
    402: "The payment was declined.",
    403: "Not allowed.",
    404: "Not found (also for another user's object).",
    409: "Conflict with the current state (out of stock, wrong state, idempotency key reused).",
    413: "The request body is too large.",
    415: "The request body is not JSON (unsupported media type).",
    429: "Too many requests; retry after the number of seconds in `Retry-After`.",
    503: "A dependency (payment gateway, database) is unavailable; retry later.",
    500: "Internal error; the request id identifies it in the logs.",
}

_envelopes: dict[type[serializers.BaseSerializer], serializers.Serializer] = {}


def envelope_serializer(data: type[serializers.BaseSerializer]) -> serializers.Serializer:
    """The success envelope around ``data``, one component per data serializer."""
    if data not in _envelopes:
        name = data.__name__.removesuffix("Serializer")
        _envelopes[data] = inline_serializer(
            name=f"{name}Envelope",
            fields={
                "success": serializers.BooleanField(help_text="Always true."),
                "data": data(),
                "duration": serializers.FloatField(help_text="Total milliseconds."),
                "metrics": serializers.DictField(
                    child=serializers.FloatField(), help_text="Milliseconds per step that ran."
                ),
                "warnings": StepErrorSerializer(many=True, help_text="Best-effort step failures."),
                "queued": serializers.ListField(
                    child=serializers.CharField(),
                    help_text="After-commit steps queued for a task worker (they run later).",
                ),
                "request_id": serializers.CharField(),
                "trace_id": serializers.CharField(required=False, help_text=TRACE_ID_HELP),
            },
        )
    return _envelopes[data]


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema responses in the error shape, one per status code, for ``extend_schema``."""
    return {
        code: OpenApiResponse(ErrorEnvelopeSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in sorted(set(codes))
    }


def describe_pipeline(orchestrator: type[BaseOrchestrator[Any, Any, Any]]) -> str:
    """A Markdown table of the pipeline, generated from its declaration."""
    lines = [
        "| # | step | kind | notes |",
        "| --- | --- | --- | --- |",
    ]
    for label, step in registry.numbered(registry.describe(orchestrator)["steps"]):
        number = label.rstrip(".")
        if step.get("branches"):
            names = ", ".join(f"`{branch['name']}`" for branch in step["branches"])
            lines.append(
                f"| {number} | `{step['name']}` | parallel group | {names} run at the same time |"
            )
        else:
            kind, *notes = flag_words(step)
            lines.append(f"| {number} | `{step['name']}` | {kind} | {', '.join(notes)} |")
    return "\n".join(lines)


def orchestrated_schema(
    orchestrator: type[BaseOrchestrator[Any, Any, Any]],
    *,
    data: type[serializers.BaseSerializer],
    request: Any = None,
    success_status: int = status.HTTP_200_OK,
    errors: Iterable[int] = (400, 401, 404, 503, 500),
    summary: str | None = None,
    description: str = "",
    **kwargs: Any,
) -> Callable[[Any], Any]:
    """``extend_schema`` for an orchestrated endpoint: the envelope, each error
    status and a description that lists the pipeline's steps and flags and links to
    its diagram in the run explorer (Swagger UI and ReDoc draw no Mermaid: they would
    show its source)."""
    pipeline = describe_pipeline(orchestrator)
    text = f"{description}\n\n**Pipeline** (`{orchestrator.metric_name}`):\n\n{pipeline}".strip()
    responses: dict[int, Any] = {
        success_status: envelope_serializer(data),
        **error_responses(*errors),
    }
    # Lazy: the URLconf is not loaded yet when views are decorated.
    described = lazy(lambda: text + diagram_link(orchestrator.metric_name), str)()
    return extend_schema(
        request=request, responses=responses, summary=summary, description=described, **kwargs
    )


def diagram_link(name: str) -> str:
    """A Markdown paragraph linking to ``name``'s diagram on the run explorer's
    orchestrators page; empty when the admin does not serve that page."""
    try:
        url = reverse("admin:orchestration_orchestrators")
    except NoReverseMatch:
        return ""
    return (
        f"\n\n**Diagram:** [`{name}` in the run explorer]({url}#{name}), drawn from the "
        "declaration with each step's recent failure rate (staff with the run-record "
        "view permission)."
    )
