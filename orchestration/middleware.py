"""Request id and Server-Timing for every response; the request edges that
Django's own middleware gets wrong for an API (slash redirects, chunked bodies)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextvars import Token
from functools import partial
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.http.response import HttpResponseRedirectBase
from django.middleware import common
from django.utils.deprecation import MiddlewareMixin
from django.utils.http import escape_leading_slashes

from orchestration.context import collected_runs, current_request_id, new_request_id
from orchestration.envelope import error_body
from orchestration.result import OrchestratorResult
from orchestration.runs import deferred_records, write_deferred

#: An incoming X-Request-ID is kept only when it looks like an id: anything else
#: (too long, spaces, control characters, header injection) is replaced.
WELL_FORMED_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def server_timing(total_ms: float, runs: list[OrchestratorResult[Any]]) -> str:
    """The Server-Timing value: the total, then each run and each step that ran."""
    entries = [f"total;dur={total_ms:.3f}"]
    for result in runs:
        entries.append(f"{result.orchestrator};dur={result.duration_ms:.3f}")
        entries.extend(
            f"{result.orchestrator}.{name};dur={ms:.3f}" for name, ms in result.metrics.items()
        )
    return ", ".join(entries)


class TimingMiddleware:
    """Give every response ``X-Request-ID`` and ``Server-Timing``.

    The request id is set for the duration of the request, so log records
    (see ``RequestIdFilter``) and orchestrator runs carry it. The run records
    of the request (``orchestration.runs``) are written when the server closes
    the response, once it has been sent. Sync and async: under ASGI an async
    view stays on the event loop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self._acall(request)
        started, tokens, runs, records = self._enter(request)
        try:
            response = self.get_response(request)
        finally:
            self._exit(tokens)
        return self._finish(request, response, started, runs, records)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started, tokens, runs, records = self._enter(request)
        try:
            response = await self.get_response(request)
        finally:
            self._exit(tokens)
        return self._finish(request, response, started, runs, records)

    @staticmethod
    def _enter(
        request: HttpRequest,
    ) -> tuple[int, tuple[Token[Any], ...], list[Any], list[Any]]:
        started = time.perf_counter_ns()
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if WELL_FORMED_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        runs: list[OrchestratorResult[Any]] = []
        records: list[Any] = []
        tokens = (
            current_request_id.set(request_id),
            collected_runs.set(runs),
            deferred_records.set(records),
        )
        return started, tokens, runs, records

    @staticmethod
    def _exit(tokens: tuple[Token[Any], ...]) -> None:
        id_token, runs_token, records_token = tokens
        deferred_records.reset(records_token)
        collected_runs.reset(runs_token)
        current_request_id.reset(id_token)

    @staticmethod
    def _finish(
        request: HttpRequest,
        response: HttpResponse,
        started: int,
        runs: list[OrchestratorResult[Any]],
        records: list[Any],
    ) -> HttpResponse:
        total_ms = (time.perf_counter_ns() - started) / 1e6
        response["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        response["Server-Timing"] = server_timing(total_ms, runs)
        if records:
            # The server closes the response once it has sent it: the records wait until then.
            response._resource_closers.append(  # type: ignore[attr-defined]
                partial(write_deferred, records)
            )
        return response


class HttpResponsePermanentRedirectKeepingMethod(HttpResponseRedirectBase):
    status_code = 308


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CommonMiddleware(common.CommonMiddleware):
    """Django's, except that the slash redirect of a POST (PUT, PATCH, DELETE) is a
    308, which clients follow with the same method and body: a 301 turns a POST
    into a GET, and with DEBUG on Django raises instead of redirecting."""

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if (
            request.method not in SAFE_METHODS
            and response.status_code == 404
            and self.should_redirect_with_slash(request)
        ):
            path = escape_leading_slashes(request.get_full_path(force_append_slash=True))
            return HttpResponsePermanentRedirectKeepingMethod(path)
        return super().process_response(request, response)


class RequestBodyMiddleware(MiddlewareMixin):
    """A chunked body without ``Content-Length`` is refused with 411.

    Django reads a request body only up to its ``Content-Length``: without one
    the body would be read as empty and the request handled as if it had none.
    A buffering proxy (nginx in ``make serve``) reads chunked bodies and passes
    them on with a length, so behind it they are accepted. Sync and async (the
    mixin's), so that under ASGI an async view stays on the event loop.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if "HTTP_TRANSFER_ENCODING" in request.META and not request.META.get("CONTENT_LENGTH"):
            return JsonResponse(
                error_body(
                    "length_required",
                    "Send the request body with a Content-Length header, not chunked.",
                ),
                status=411,
            )
        return None
