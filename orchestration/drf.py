"""Django REST framework glue: the envelope response, its schema, the error handler."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orchestration import registry
from orchestration.context import current_request_id, new_request_id
from orchestration.engine import BaseOrchestrator
from orchestration.envelope import error_body, typed_error_body
from orchestration.errors import DatabaseUnavailable, OrchestrationError, internal_error
from orchestration.result import OrchestratorResult
from orchestration.steps import flag_words

logger = logging.getLogger("orchestration")


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
    body["request_id"] = result.request_id
    return body


def envelope_response(
    result: OrchestratorResult[Any], *, success_status: int = status.HTTP_200_OK
) -> Response:
    """Render a result: ``success_status`` on success, the error's status otherwise."""
    code = success_status if result.success else result.status_code
    return Response(envelope(result), status=code)


# -- errors outside pipelines (authentication, parsing, throttling, crashes) ----------


class PayloadTooLarge(exceptions.APIException):
    """A body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (Django raises RequestDataTooBig)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, answering with the same error shape as orchestrated endpoints.

    Statuses and headers (``WWW-Authenticate``, ``Retry-After``) are DRF's own.
    A lost database is a 503; any other unexpected exception is logged with its
    traceback and answered as a 500 without internals.
    """
    # DRF converts these two internally but hands back no `detail` on the original.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        detail = exc.detail
        if isinstance(exc, exceptions.ValidationError):
            code, message = "validation_failed", "The input is invalid."
            details = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        elif isinstance(detail, dict):  # simplejwt: {"detail": ..., "code": ..., "messages": ...}
            code = str(detail.get("code", exc.default_code))
            message, details = str(detail.get("detail", exc.default_detail)), {}
        else:
            code = str(getattr(detail, "code", None) or exc.default_code)
            message, details = str(detail), {}
        response.data = error_body(code, message, details)
        return response
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        typed: OrchestrationError = DatabaseUnavailable()
    else:
        logger.error("unhandled error in %s", context.get("view"), exc_info=exc)
        typed = internal_error(current_request_id.get() or new_request_id())
    return Response(typed_error_body(typed), status=typed.status)


# -- OpenAPI (drf-spectacular) --------------------------------------------------------


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
                "request_id": serializers.CharField(),
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
    status and a description that lists the pipeline's steps and flags."""
    pipeline = describe_pipeline(orchestrator)
    text = f"{description}\n\n**Pipeline** (`{orchestrator.metric_name}`):\n\n{pipeline}".strip()
    responses: dict[int, Any] = {
        success_status: envelope_serializer(data),
        **error_responses(*errors),
    }
    return extend_schema(
        request=request, responses=responses, summary=summary, description=text, **kwargs
    )
