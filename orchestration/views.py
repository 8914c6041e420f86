"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import os

from django.db import DatabaseError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from orchestration.conf import get_config
from orchestration.context import current_request_id
from orchestration.envelope import error_body, typed_error_body
from orchestration.errors import internal_error
from orchestration.metrics import JOURNAL_REGISTRY

API_PREFIX = "/api/"


@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """The process is up (no dependency is checked)."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Every configured database answers a query; 503 naming the one that does not."""
    for alias in connections:
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT 1")
        except DatabaseError:
            return JsonResponse(
                {"status": "unavailable", "database": alias, "message": "database unreachable"},
                status=503,
            )
    return JsonResponse({"status": "ready"})


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (all workers under gunicorn), behind ``METRICS_TOKEN`` if set."""
    token = get_config()["METRICS_TOKEN"]
    if token:
        supplied = request.headers.get("Authorization", "")
        if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
            response = HttpResponse("metrics require a bearer token\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    exposition = generate_latest(_registry()) + generate_latest(JOURNAL_REGISTRY)
    return HttpResponse(exposition, content_type=CONTENT_TYPE_LATEST)


def _registry() -> CollectorRegistry:
    """Every worker's samples in multiprocess mode, this process's otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: the API's error shape under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: never a traceback; the request id points at the log record."""
    if request.path.startswith(API_PREFIX):
        error = internal_error(current_request_id.get() or "-")
        return JsonResponse(typed_error_body(error), status=error.status)
    return defaults.server_error(request)
