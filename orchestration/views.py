"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Iterator

from django.db import DatabaseError, connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Metric, multiprocess
from prometheus_client.exposition import choose_encoder

from orchestration.conf import get_config
from orchestration.envelope import typed_error_body
from orchestration.errors import classify
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
    # OpenMetrics when asked (Prometheus asks when it stores exemplars): in a single
    # process the step histograms' exemplars link to their traces; the client keeps
    # none in multiprocess mode. One exposition: OpenMetrics allows a single EOF.
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_Exposed(_registry(), JOURNAL_REGISTRY)), content_type=content_type)


class _Exposed:
    """Several registries read as one by an encoder (which only calls ``collect``)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self.registries:
            yield from registry.collect()


def _registry() -> CollectorRegistry:
    """Every worker's samples in multiprocess mode, this process's otherwise."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def api_error(request: HttpRequest, exc: BaseException | None, *, log: bool = True) -> JsonResponse:
    """The error envelope for ``exc`` (see ``errors.classify``)."""
    typed = classify(exc, where=f"request {request.path!r}", log=log)
    return JsonResponse(typed_error_body(typed), status=typed.status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refused to read (disallowed Host, too many
    fields, a body over the size limit, ...): the API's error shape under /api/."""
    if request.path.startswith(API_PREFIX):
        return api_error(request, exception)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler403``: the API's error shape under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return api_error(request, exception)
    return defaults.permission_denied(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: the API's error shape under /api/, Django's page elsewhere."""
    if request.path.startswith(API_PREFIX):
        return api_error(request, exception)
    return defaults.page_not_found(request, exception)


@csrf_exempt
def api_not_found(request: HttpRequest) -> JsonResponse:
    """The last route under /api/: an unknown API URL is a 404 in the error shape,
    also with DEBUG on, where Django would otherwise answer its HTML debug page."""
    return api_error(request, Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: never a traceback; the request id points at the log record.

    Under /api/ the exception is classified like any other: a lost database is
    still a 503. Django has already logged it.
    """
    if request.path.startswith(API_PREFIX):
        return api_error(request, sys.exc_info()[1], log=False)
    return defaults.server_error(request)
