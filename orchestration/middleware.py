"""Request id and Server-Timing for every response."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from orchestration.context import collected_runs, current_request_id, new_request_id
from orchestration.result import OrchestratorResult

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
    (see ``RequestIdFilter``) and orchestrator runs carry it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter_ns()
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if WELL_FORMED_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id  # type: ignore[attr-defined]
        runs: list[OrchestratorResult[Any]] = []
        id_token = current_request_id.set(request_id)
        runs_token = collected_runs.set(runs)
        try:
            response = self.get_response(request)
        finally:
            collected_runs.reset(runs_token)
            current_request_id.reset(id_token)
        total_ms = (time.perf_counter_ns() - started) / 1e6
        response["X-Request-ID"] = request_id
        response["Server-Timing"] = server_timing(total_ms, runs)
        return response
