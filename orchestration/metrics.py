"""Prometheus metrics of the engine, defined once at import time.

Names follow Prometheus conventions (seconds, ``_total`` counters; the client
appends ``_total`` to counters). Labels come from declared orchestrator and
step names and from error codes only, never from user input. Under gunicorn
the client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) aggregates the
workers; the in-progress gauge sums the live processes.

Label children are resolved once per (orchestrator, step) and cached, so a run
pays for a dictionary lookup, not for label resolution.

The engine writes its histograms and its in-progress gauge through ``observe``,
``add`` and ``end_run`` below, not through ``Histogram.observe``: in a single
process those take one lock per write (one for all of a run's plain steps at
its end), where ``Histogram.observe`` takes two per observation (the sum and
the bucket). The values written are the same (the bucket is the first whose
bound is not below the value, as ``observe`` chooses it). Under multiprocess
mode the client's own methods are used. Code outside the engine that writes to
the engine's label children must do it through these functions too.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestration.steps import NAME, Parallel

if TYPE_CHECKING:
    from orchestration.steps import Step

#: From 100 µs: many steps are sub-millisecond, and a histogram that starts at
#: 5 ms would put them all in its first bucket.
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    float("inf"),
)

ORCHESTRATOR_DURATION = Histogram(
    "orchestrator_duration_seconds",
    "Wall time of an orchestrator run (its after-commit steps run later, in a task worker).",
    ["orchestrator", "outcome"],
    buckets=BUCKETS,
)
STEP_DURATION = Histogram(
    "orchestrator_step_duration_seconds",
    "Wall time of one step, retries and backoff included.",
    ["orchestrator", "step", "outcome"],
    buckets=BUCKETS,
)
STEP_FAILURES = Counter(
    "orchestrator_step_failures",
    "Step failures, counted once per failed step (not per attempt).",
    ["orchestrator", "step", "critical", "code"],
)
STEP_SKIPPED = Counter(
    "orchestrator_step_skipped",
    "Steps skipped because their `when` condition was false.",
    ["orchestrator", "step"],
)
STEP_RETRIES = Counter(
    "orchestrator_step_retries",
    "Retries (attempts after the first) of steps with a retry policy.",
    ["orchestrator", "step"],
)
COMPENSATIONS = Counter(
    "orchestrator_compensations",
    "Compensations run after a critical failure, by outcome (ok, failed).",
    ["orchestrator", "step", "outcome"],
)
GROUP_DURATION = Histogram(
    "orchestrator_group_duration_seconds",
    "Wall time of a parallel group: from starting its steps until the last one ended.",
    ["orchestrator", "group", "outcome"],
    buckets=BUCKETS,
)
IN_PROGRESS = Gauge(
    "orchestrator_in_progress",
    "Orchestrator runs in progress.",
    ["orchestrator"],
    multiprocess_mode="livesum",
)

#: Single-process values (a float behind a lock each) are written directly, under one
#: lock of the engine's; multiprocess ones (memory-mapped files) through the client.
DIRECT = values.ValueClass is values.MutexValue
_lock = threading.Lock()


def observe(child: Histogram, seconds: float) -> None:
    """``child.observe(seconds)`` for one of the engine's histogram children."""
    if not DIRECT:
        child.observe(seconds)
        return
    with _lock:
        child._sum._value += seconds
        child._buckets[bisect_left(child._upper_bounds, seconds)]._value += 1


def end_run(
    observations: Iterable[tuple[Histogram, float]], duration: Histogram, seconds: float
) -> None:
    """A run's end: its steps' ``observations`` and its own duration, under one lock
    in a single process."""
    if not DIRECT:
        for child, value in observations:
            child.observe(value)
        duration.observe(seconds)
        return
    with _lock:
        for child, value in observations:
            child._sum._value += value
            child._buckets[bisect_left(child._upper_bounds, value)]._value += 1
        duration._sum._value += seconds
        duration._buckets[bisect_left(duration._upper_bounds, seconds)]._value += 1


#: Time in queue spans from milliseconds (an idle worker) to hours (a backlog).
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

QUEUED_STEPS = Counter(
    "orchestrator_queued_steps",
    "After-commit steps queued by committed runs (a run queues its steps as one task).",
    ["orchestrator", "step"],
)
QUEUED_STEP_RUNS = Counter(
    "orchestrator_queued_step_runs",
    "Deliveries of queued steps to a worker, by outcome: ok, failed (for good), requeued "
    "(failed, will be delivered again), duplicate (already done or running: nothing ran).",
    ["orchestrator", "step", "outcome"],
)
QUEUED_STEP_WAIT = Histogram(
    "orchestrator_queued_step_wait_seconds",
    "Time in queue: from the run's commit to the first worker that claimed the step.",
    ["orchestrator", "step"],
    buckets=QUEUE_BUCKETS,
)
QUEUED_STEP_OUTCOMES = ("ok", "failed", "requeued", "duplicate")


#: Distinct error codes counted per step before further ones are folded into
#: ``other``: codes are meant to be a small fixed set, and a code built from
#: data must not grow the label set without bound.
MAX_CODES_PER_STEP = 32


class StepMetrics:
    """The label children of one step of one orchestrator."""

    __slots__ = (
        "_failures",
        "critical",
        "duration",
        "ok",
        "orchestrator",
        "retries",
        "skipped",
        "step",
    )

    def __init__(self, orchestrator: str, step: str, *, critical: bool) -> None:
        self.orchestrator = orchestrator
        self.step = step
        self.critical = "true" if critical else "false"
        self.duration = {
            outcome: STEP_DURATION.labels(orchestrator, step, outcome)
            for outcome in ("ok", "failed", "timed_out")
        }
        self.ok = self.duration["ok"]
        self.skipped = STEP_SKIPPED.labels(orchestrator, step)
        self.retries = STEP_RETRIES.labels(orchestrator, step)
        self._failures: dict[str, Counter] = {}

    def failed(self, code: str) -> None:
        child = self._failures.get(code)
        if child is None:
            label = code
            if len(self._failures) >= MAX_CODES_PER_STEP or not NAME.match(code):
                label = "other"
            child = STEP_FAILURES.labels(self.orchestrator, self.step, self.critical, label)
            if label == code:
                self._failures[code] = child
        child.inc()

    def compensated(self, outcome: str) -> None:
        COMPENSATIONS.labels(self.orchestrator, self.step, outcome).inc()


class OrchestratorMetrics:
    """The label children of one orchestrator, steps resolved on first use."""

    __slots__ = ("_pipeline", "duration", "groups", "in_progress", "name", "running", "steps")

    def __init__(self, name: str) -> None:
        self.name = name
        self.duration = {
            outcome: ORCHESTRATOR_DURATION.labels(name, outcome)
            for outcome in ("success", "failure")
        }
        self.in_progress = IN_PROGRESS.labels(name)
        #: The runs in progress in this process (``start`` and ``finish``).
        self.running: set[object] = set()
        if DIRECT:
            # Read when scraped: adding to and removing from a set needs no lock.
            self.in_progress.set_function(self.running.__len__)
        self.steps: dict[tuple[str, bool], StepMetrics] = {}
        self.groups: dict[str, dict[str, Histogram]] = {}
        self._pipeline: tuple[Sequence[Step[Any]], tuple[StepMetrics | None, ...]] = ((), ())

    def start(self, run: object) -> None:
        """``run`` is in progress (the in-progress gauge counts it)."""
        if DIRECT:
            self.running.add(run)
        else:
            self.in_progress.inc()

    def finish(self, run: object) -> None:
        if DIRECT:
            self.running.discard(run)
        else:
            self.in_progress.dec()

    def for_steps(self, steps: Sequence[Step[Any]]) -> tuple[StepMetrics | None, ...]:
        """The children of each step of ``steps``, in order; resolved once per pipeline.

        A parallel group has none (None): its steps have theirs, and its wall
        time is ``orchestrator_group_duration_seconds``.
        """
        pipeline, children = self._pipeline
        if pipeline is not steps:
            children = tuple(
                None if isinstance(step, Parallel) else self.step(step.name, critical=step.critical)
                for step in steps
            )
            self._pipeline = (steps, children)
        return children

    def group(self, name: str) -> dict[str, Histogram]:
        """The wall-time children of parallel group ``name``, by outcome (ok, failed)."""
        found = self.groups.get(name)
        if found is None:
            found = self.groups[name] = {
                outcome: GROUP_DURATION.labels(self.name, name, outcome)
                for outcome in ("ok", "failed")
            }
        return found

    def step(self, name: str, *, critical: bool) -> StepMetrics:
        key = (name, critical)
        found = self.steps.get(key)
        if found is None:
            found = self.steps[key] = StepMetrics(self.name, name, critical=critical)
        return found


class EffectJournalCollector(Collector):
    """Unsettled journal entries, counted in the database at scrape time.

    The count is the same whichever worker is scraped (aggregate with ``max``,
    not ``sum``). Entries awaiting recovery are pending past their lease: their
    run died and ``recover_effects`` has not undone them yet.
    """

    def collect(self) -> Any:
        from django.db import DatabaseError
        from django.db.models import Count
        from django.utils import timezone

        from orchestration.journal import PENDING, ROLLBACK_INCOMPLETE
        from orchestration.models import EffectRecord

        awaiting = GaugeMetricFamily(
            "orchestrator_effects_awaiting_recovery",
            "Journaled effects of runs that died, not yet compensated by recover_effects.",
            labels=["orchestrator", "step"],
        )
        incomplete = GaugeMetricFamily(
            "orchestrator_effects_rollback_incomplete",
            "Journaled effects whose compensation failed; recover_effects retries them.",
            labels=["orchestrator", "step"],
        )
        try:
            rows = (
                EffectRecord.objects.filter(state__in=(PENDING, ROLLBACK_INCOMPLETE))
                .exclude(state=PENDING, lease_until__gte=timezone.now())
                .values_list("orchestrator", "step", "state")
                .annotate(count=Count("id"))
                .order_by()
            )
            for orchestrator, step, state, count in rows:
                family = incomplete if state == ROLLBACK_INCOMPLETE else awaiting
                family.add_metric([orchestrator, step], count)
        except DatabaseError:
            return  # /metrics stays up when the database is not
        yield awaiting
        yield incomplete


#: Rendered after the process (or multiprocess) metrics by the /metrics view.
JOURNAL_REGISTRY = CollectorRegistry(auto_describe=False)
JOURNAL_REGISTRY.register(EffectJournalCollector())


class QueuedStepMetrics:
    """The label children of one after-commit step run by task workers."""

    __slots__ = ("queued", "runs", "wait")

    def __init__(self, orchestrator: str, step: str) -> None:
        self.queued = QUEUED_STEPS.labels(orchestrator, step)
        self.runs = {
            outcome: QUEUED_STEP_RUNS.labels(orchestrator, step, outcome)
            for outcome in QUEUED_STEP_OUTCOMES
        }
        self.wait = QUEUED_STEP_WAIT.labels(orchestrator, step)


_queued: dict[tuple[str, str], QueuedStepMetrics] = {}


def queued_step_metrics(orchestrator: str, step: str) -> QueuedStepMetrics:
    found = _queued.get((orchestrator, step))
    if found is None:
        found = _queued[(orchestrator, step)] = QueuedStepMetrics(orchestrator, step)
    return found
