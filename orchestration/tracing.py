"""OpenTelemetry spans for runs and steps, when the ``opentelemetry`` extra is installed.

Tracing is on when the OpenTelemetry API is importable, the run happens
inside a recording span (the Django request's, with a tracer provider
configured and opentelemetry-instrumentation-django; a task's; or one the
caller opened) and ``ORCHESTRATION["TRACING"]`` is not False. Then each run
gets a span ``orchestrator <name>``, a child of that current span,
and each step a span ``step <name>`` under it, with the attributes
``orchestration.step``, ``.critical``, ``.attempts``, ``.outcome`` and
``.error_code``. The step's observation in the step duration histogram gets
the step's span as its exemplar.

The spans are made when the run is over, from the timings the engine already
took: the engine pays nothing per step for them. Their start times are
reconstructed: steps in the transaction are laid end to end from the run's
start, after-commit steps end to end up to the run's end, so the gaps between
steps (the engine's own microseconds, the commit) fall between spans.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.samples import Exemplar

try:
    from opentelemetry import trace
except ImportError:  # the extra is not installed
    trace = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from prometheus_client import Histogram

    from orchestration.metrics import OrchestratorMetrics
    from orchestration.result import OrchestratorResult
    from orchestration.steps import Step

TRACER_NAME = "orchestration"

#: Step statuses observed in ``orchestrator_step_duration_seconds`` (its outcome label).
STEP_OUTCOMES = ("ok", "failed", "timed_out")


def enabled() -> bool:
    """A span is recording in this context: the Django request's, a task's, or one
    the caller opened. (Checking for a configured provider instead would read the
    environment on every run.)

    While no global tracer provider has been set or loaded, the spans of this
    module would go nowhere (``trace.get_tracer`` hands out no-op tracers), so
    the context is not even looked at: a process without tracing pays one
    attribute read per run.
    """
    if trace is None or getattr(trace, "_TRACER_PROVIDER", True) is None:
        return False
    return trace.get_current_span().is_recording()


def current_trace_id() -> str | None:
    """The id of the trace being recorded in this context (32 hex digits), if any."""
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def trace_run(
    result: OrchestratorResult[Any],
    steps: Sequence[Step[Any]],
    metrics: OrchestratorMetrics | None,
) -> str:
    """Emit the spans of a finished run; its trace id. With ``metrics``, each step's
    observation in the step histogram gets its span as exemplar."""
    assert trace is not None
    tracer = trace.get_tracer(TRACER_NAME)
    end = time.time_ns()
    start = end - int(result.duration_ms * 1e6)
    error = result.error
    run_span = tracer.start_span(
        f"orchestrator {result.orchestrator}",
        start_time=start,
        attributes={
            "orchestration.orchestrator": result.orchestrator,
            "orchestration.request_id": result.request_id,
            "orchestration.outcome": "success" if result.success else "failure",
            "orchestration.failing_step": error.step if error else "",
            "orchestration.error_code": error.code if error else "",
        },
    )
    if error is not None:
        run_span.set_status(trace.Status(trace.StatusCode.ERROR, error.code))
    parent = trace.set_span_in_context(run_span)
    after_commit = {step.name for step in steps if step.after_commit}
    tail = [record for record in result.steps if record.name in after_commit]
    cursor = start
    for record in result.steps:
        if record is (tail[0] if tail else None):
            tail_ns = sum(int(later.duration_ms * 1e6) for later in tail)
            cursor = max(cursor, end - tail_ns)
        duration = int(record.duration_ms * 1e6)
        span = tracer.start_span(
            f"step {record.name}",
            context=parent,
            start_time=cursor,
            attributes={
                "orchestration.step": record.name,
                "orchestration.critical": record.critical,
                "orchestration.attempts": record.attempts,
                "orchestration.outcome": record.status,
                "orchestration.error_code": record.error.code if record.error else "",
            },
        )
        if record.error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, record.error.code))
        if record.status == "compensated" or record.compensation is not None:
            run_span.add_event(
                "compensation",
                {
                    "orchestration.step": record.name,
                    "orchestration.outcome": record.compensation or "ok",
                },
            )
        cursor += duration
        span.end(end_time=cursor)
        if metrics is not None and record.status in STEP_OUTCOMES:
            child = metrics.step(record.name, critical=record.critical).duration[record.status]
            set_exemplar(child, record.duration_ms / 1e3, span.get_span_context())
    run_span.end(end_time=end)
    return format(run_span.get_span_context().trace_id, "032x")


def set_exemplar(histogram: Histogram, seconds: float, span: Any) -> None:
    """Link the bucket the engine counted ``seconds`` in to ``span``.

    The engine observed the step while it ran, before its span existed, so the
    exemplar is attached afterwards, to the same bucket ``observe`` chose. It
    is exposed in the OpenMetrics format (``/metrics`` with
    ``Accept: application/openmetrics-text``) of a single process; the client
    library keeps no exemplars in multiprocess mode (gunicorn with
    ``PROMETHEUS_MULTIPROC_DIR``).
    """
    labels = {"trace_id": format(span.trace_id, "032x"), "span_id": format(span.span_id, "016x")}
    for bucket, bound in zip(histogram._buckets, histogram._upper_bounds, strict=True):
        if seconds <= bound:
            bucket.set_exemplar(Exemplar(labels, seconds, time.time()))
            return
