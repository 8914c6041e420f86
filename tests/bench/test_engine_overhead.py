"""Engine overhead per step against the same job written inline, and memory over 100,000 runs.

The inline baseline is what a careful engineer writes by hand in a view: a
loop over the operations, ``try``/``except`` around each call,
``time.perf_counter`` before and after, one histogram observation per step
(into the engine's own histogram, so the bucket layout and lock costs are the
same), a dictionary of per-step milliseconds for the response, and one
observation of the total. Two ways of resolving the histogram's labels are
measured:

* ``inline`` resolves each step's label child once, before the loop (the
  strictest baseline, and the headline ratio);
* ``inline .labels()`` calls ``HISTOGRAM.labels(...)`` on every observation,
  the idiom of prometheus_client's documentation and of most hand-written code.

Run records are off here (``WITHOUT_RECORDS``): a sampled record is a database
write, an I/O cost like a step's query, which would swamp no-op steps; the
end-to-end benchmark measures it with recording on and off. The engine still
calls its end-of-run hook, which decides not to record.

Every configuration is measured in the same process, in interleaved rounds
(the order shuffled each round), and reported as the median of the rounds.
Nothing here asserts a timing: the figures are printed and written to
``bench-results/engine.json`` and ``bench-results/engine.md``.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import logging
import os
import platform
import pstats
import random
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import django
import pytest
from django.db import connection, transaction
from django.test import override_settings

from orchestration import BaseOrchestrator, OperationContext, ServiceUnavailable, Step
from orchestration.metrics import ORCHESTRATOR_DURATION, STEP_DURATION

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

WITHOUT_RECORDS = {"RUN_RECORDS": False}

RESULTS_DIR = Path(__file__).resolve().parents[2] / "bench-results"
SIZES = (3, 16, 64)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
BATCH_SECONDS = 0.01
MEMORY_RUNS = 100_000
REQUEST_ID = "bench-request-id"


def noop(ctx: OperationContext) -> OperationContext:
    return ctx


def fail_softly(ctx: OperationContext) -> OperationContext:
    raise ServiceUnavailable("The analytics service is down.")


def build_orchestrator(size: int, *, atomic: bool) -> BaseOrchestrator[Any, Any, Any]:
    """An orchestrator of ``size`` critical no-op steps over one shared context."""
    shared = OperationContext(request_id=REQUEST_ID)

    class NoopPipeline(BaseOrchestrator[OperationContext, None, None], abstract=True):
        def initialize_context(self, input: None, **kwargs: Any) -> OperationContext:
            return shared

        def build_result(self, ctx: OperationContext) -> None:
            return None

    cls = type(
        f"Bench{size}{'Atomic' if atomic else ''}",
        (NoopPipeline,),
        {
            "__module__": __name__,
            "atomic": atomic,
            "metric_name": f"bench_{size}_{'atomic' if atomic else 'plain'}",
            "pipeline": tuple(Step(f"step_{i}", noop) for i in range(size)),
        },
    )
    return cls()


def build_inline(
    size: int, *, metrics: bool, labels_per_call: bool, atomic: bool
) -> Callable[[], Any]:
    """The hand-written equivalent of ``build_orchestrator(size)``."""
    name = f"inline_{size}"
    operations = [(f"step_{i}", noop) for i in range(size)]
    children = [STEP_DURATION.labels(name, step, "ok") for step, _ in operations]
    failed_children = [STEP_DURATION.labels(name, step, "failed") for step, _ in operations]
    run_ok = ORCHESTRATOR_DURATION.labels(name, "success")
    shared = OperationContext(request_id=REQUEST_ID)
    perf_counter = time.perf_counter

    def with_children() -> dict[str, float]:
        ctx = shared
        timings = {}
        started = perf_counter()
        for (step, operation), child, failed in zip(
            operations, children, failed_children, strict=True
        ):
            step_started = perf_counter()
            try:
                ctx = operation(ctx)
            except Exception:
                failed.observe(perf_counter() - step_started)
                raise
            elapsed = perf_counter() - step_started
            child.observe(elapsed)
            timings[step] = elapsed * 1000
        run_ok.observe(perf_counter() - started)
        return timings

    def with_labels() -> dict[str, float]:
        ctx = shared
        timings = {}
        started = perf_counter()
        for step, operation in operations:
            step_started = perf_counter()
            try:
                ctx = operation(ctx)
            except Exception:
                STEP_DURATION.labels(name, step, "failed").observe(perf_counter() - step_started)
                raise
            elapsed = perf_counter() - step_started
            STEP_DURATION.labels(name, step, "ok").observe(elapsed)
            timings[step] = elapsed * 1000
        ORCHESTRATOR_DURATION.labels(name, "success").observe(perf_counter() - started)
        return timings

    def without_metrics() -> dict[str, float]:
        ctx = shared
        timings = {}
        for step, operation in operations:
            step_started = perf_counter()
            try:
                ctx = operation(ctx)
            except Exception:
                raise
            timings[step] = (perf_counter() - step_started) * 1000
        return timings

    run = (with_labels if labels_per_call else with_children) if metrics else without_metrics
    if not atomic:
        return run

    def in_transaction() -> dict[str, float]:
        with transaction.atomic():
            return run()

    return in_transaction


@dataclass(frozen=True)
class Case:
    impl: str  # "engine", "inline", "inline_labels"
    size: int
    metrics: bool
    atomic: bool

    @property
    def key(self) -> str:
        return (
            f"{self.impl}/{self.size}/{'metrics' if self.metrics else 'nometrics'}"
            f"/{'atomic' if self.atomic else 'plain'}"
        )


def make_cases() -> list[Case]:
    cases = []
    for size in SIZES:
        for atomic in (False, True):
            for metrics in (True, False):
                cases.append(Case("engine", size, metrics, atomic))
                cases.append(Case("inline", size, metrics, atomic))
                if metrics:
                    cases.append(Case("inline_labels", size, metrics, atomic))
    return cases


def runner_for(case: Case, orchestrators: dict[tuple[int, bool], Any]) -> Callable[[], Any]:
    if case.impl == "engine":
        orchestrator = orchestrators[case.size, case.atomic]
        execute = orchestrator.execute

        def run() -> Any:
            return execute(None, request_id=REQUEST_ID)

        return run
    return build_inline(
        case.size,
        metrics=case.metrics,
        labels_per_call=case.impl == "inline_labels",
        atomic=case.atomic,
    )


def time_batch(run: Callable[[], Any], count: int) -> float:
    """Nanoseconds per call over ``count`` calls."""
    started = time.perf_counter_ns()
    for _ in range(count):
        run()
    return (time.perf_counter_ns() - started) / count


def calibrate(run: Callable[[], Any]) -> int:
    """A batch size that takes about BATCH_SECONDS (after a warm-up)."""
    per_call = time_batch(run, 200)
    return max(20, int(BATCH_SECONDS * 1e9 / per_call))


def measure_transaction_cost(rounds: int) -> float:
    """Nanoseconds for an empty ``transaction.atomic()`` block (begin and commit)."""

    def empty() -> None:
        with transaction.atomic():
            pass

    count = calibrate(empty)
    return statistics.median(time_batch(empty, count) for _ in range(rounds))


def linear_fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``ns_per_run = fixed + per_step * size``; returns (fixed, per_step)."""
    xs = [x for x, _ in points]
    ys = [y for _, y in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x in xs)
    return mean_y - slope * mean_x, slope


def profile_engine(orchestrator: BaseOrchestrator[Any, Any, Any], runs: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        orchestrator.execute(None, request_id=REQUEST_ID)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(lines[start:])


def resident_kib() -> int:
    """Current resident set size (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") // 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


#: Runs between two deletions of the queued steps' rows in the memory benchmark.
CHUNK = 1000


def forget_queued_steps() -> None:
    """Delete the queued steps and their tasks (no worker runs them here)."""
    from django_tasks_db.models import DBTaskResult

    from orchestration.models import QueuedStep

    QueuedStep.objects.all().delete()
    DBTaskResult.objects.all().delete()


def memory_over_runs(runs: int) -> dict[str, Any]:
    """Resident memory before and after ``runs`` executions of a realistic small pipeline.

    Five steps: three critical, one best-effort step that fails (savepoint,
    warning, failure counter), one after-commit step; atomic, metrics on.
    """

    class MemoryPipeline(BaseOrchestrator[OperationContext, None, None]):
        metric_name = "bench_memory"
        pipeline = (
            Step("load", noop),
            Step("check", noop),
            Step("write", noop),
            Step("track", fail_softly, critical=False),
            Step("notify", noop, critical=False, after_commit=True),
        )

        def initialize_context(self, input: None, **kwargs: Any) -> OperationContext:
            return OperationContext(**kwargs)

        def build_result(self, ctx: OperationContext) -> None:
            return None

    orchestrator = MemoryPipeline()
    engine_logger = logging.getLogger("orchestration")
    previous_level = engine_logger.level
    engine_logger.setLevel(logging.ERROR)  # pytest keeps every log record it captures
    try:
        for _ in range(1000):
            orchestrator.execute(None)
        forget_queued_steps()
        gc.collect()
        before = resident_kib()
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        elapsed = 0.0
        for _ in range(runs // CHUNK):
            started = time.perf_counter()
            for _ in range(CHUNK):
                result = orchestrator.execute(None)
            elapsed += time.perf_counter() - started
            # The test database lives in this process's memory (SQLite): without this,
            # the rows of the queued steps would count as the engine's growth.
            forget_queued_steps()
        gc.collect()
        after = resident_kib()
        peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        engine_logger.setLevel(previous_level)
    assert result.success
    assert len(result.warnings) == 1
    return {
        "runs": runs,
        "pipeline": "5 steps: 3 critical, 1 failing best-effort (savepoint), 1 after-commit",
        "queued_rows": f"deleted every {CHUNK} runs (the test database is in memory)",
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_growth_kib": after - before,
        "bytes_per_run": (after - before) * 1024 / runs,
        "peak_rss_growth_kib": peak_after - peak_before,
        "seconds": round(elapsed, 2),
        "us_per_run": round(elapsed / runs * 1e6, 1),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    header = (
        "| steps | atomic | metrics | engine ns/step | inline ns/step | engine/inline "
        "| inline .labels() ns/step | engine/.labels() |"
    )
    lines = [header, "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for row in rows:
        labels = row.get("inline_labels_ns_per_step")
        lines.append(
            f"| {row['steps']} | {'yes' if row['atomic'] else 'no'} | "
            f"{'on' if row['metrics'] else 'off'} | {row['engine_ns_per_step']:.0f} | "
            f"{row['inline_ns_per_step']:.0f} | {row['ratio']:.2f} | "
            + (f"{labels:.0f} | {row['ratio_labels']:.2f} |" if labels else "- | - |")
        )
    return "\n".join(lines)


def test_engine_overhead_against_inline_code() -> None:
    orchestrators = {
        (size, atomic): build_orchestrator(size, atomic=atomic)
        for size in SIZES
        for atomic in (False, True)
    }
    cases = make_cases()
    runners = {case.key: runner_for(case, orchestrators) for case in cases}
    metrics_setting = {
        True: {"METRICS": True, **WITHOUT_RECORDS},
        False: {"METRICS": False, **WITHOUT_RECORDS},
    }

    batches: dict[str, int] = {}
    for case in cases:
        with override_settings(ORCHESTRATION=metrics_setting[case.metrics]):
            batches[case.key] = calibrate(runners[case.key])

    samples: dict[str, list[float]] = {case.key: [] for case in cases}
    rng = random.Random(20250601)
    for _ in range(ROUNDS):
        order = cases[:]
        rng.shuffle(order)
        for case in order:
            with override_settings(ORCHESTRATION=metrics_setting[case.metrics]):
                samples[case.key].append(time_batch(runners[case.key], batches[case.key]))
    ns_per_run = {key: statistics.median(values) for key, values in samples.items()}

    rows = []
    for size in SIZES:
        for atomic in (False, True):
            for metrics in (True, False):
                engine = ns_per_run[Case("engine", size, metrics, atomic).key] / size
                inline = ns_per_run[Case("inline", size, metrics, atomic).key] / size
                row: dict[str, Any] = {
                    "steps": size,
                    "atomic": atomic,
                    "metrics": metrics,
                    "engine_ns_per_step": round(engine, 1),
                    "inline_ns_per_step": round(inline, 1),
                    "ratio": round(engine / inline, 3),
                }
                if metrics:
                    labels = ns_per_run[Case("inline_labels", size, metrics, atomic).key] / size
                    row["inline_labels_ns_per_step"] = round(labels, 1)
                    row["ratio_labels"] = round(engine / labels, 3)
                rows.append(row)

    fits = {}
    for impl in ("engine", "inline", "inline_labels"):
        for atomic in (False, True):
            for metrics in (True, False):
                if impl == "inline_labels" and not metrics:
                    continue
                points = [
                    (size, ns_per_run[Case(impl, size, metrics, atomic).key]) for size in SIZES
                ]
                fixed, per_step = linear_fit(points)
                fits[
                    f"{impl}/{'metrics' if metrics else 'nometrics'}/"
                    f"{'atomic' if atomic else 'plain'}"
                ] = {
                    "fixed_ns_per_run": round(fixed),
                    "marginal_ns_per_step": round(per_step),
                }

    transaction_ns = measure_transaction_cost(ROUNDS)
    with override_settings(ORCHESTRATION={"METRICS": True, **WITHOUT_RECORDS}):
        profile = profile_engine(orchestrators[16, False], 5000)
    memory = memory_over_runs(MEMORY_RUNS)

    table = format_table(rows)
    fit_lines = ["| implementation | fixed ns/run | marginal ns/step |", "| --- | ---: | ---: |"]
    fit_lines += [
        f"| {key} | {fit['fixed_ns_per_run']} | {fit['marginal_ns_per_step']} |"
        for key, fit in fits.items()
    ]
    environment = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "database": connection.vendor,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "rounds": ROUNDS,
        "batch_seconds": BATCH_SECONDS,
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path = RESULTS_DIR / "engine.json"
    md_path = RESULTS_DIR / "engine.md"
    json_path.write_text(
        json.dumps(
            {
                "environment": environment,
                "per_step": rows,
                "linear_fit": fits,
                "empty_transaction_ns": round(transaction_ns),
                "memory": memory,
                "profile_engine_16_steps_metrics_on": profile,
            },
            indent=2,
        )
        + "\n"
    )
    md_path.write_text(
        "# Engine overhead per step\n\n"
        f"Environment: {json.dumps(environment)}\n\n"
        "Median of interleaved rounds; ns per step = ns per run / steps (fixed per-run "
        "costs included, which is why short pipelines cost more per step).\n\n"
        f"{table}\n\n"
        "Least-squares fit `ns per run = fixed + marginal x steps` over 3, 16 and 64 steps:\n\n"
        + "\n".join(fit_lines)
        + f"\n\nEmpty `transaction.atomic()` (begin + commit) on {connection.vendor}: "
        f"{transaction_ns:.0f} ns per run (paid by both sides in the atomic rows).\n\n"
        f"Memory: {json.dumps(memory)}\n\n"
        "cProfile, engine, 16 steps, metrics on, 5000 runs (top by own time):\n\n"
        f"```\n{profile}\n```\n"
    )
    print()
    print(table)
    print()
    print("\n".join(fit_lines))
    print(f"\nempty transaction.atomic() on {connection.vendor}: {transaction_ns:.0f} ns")
    print(f"memory over {MEMORY_RUNS} runs: {json.dumps(memory)}")
    print(f"\nprofile (engine, 16 steps, metrics on):\n{profile}")
    print(f"\nresults: {md_path}\n         {json_path}")
    assert all(row["engine_ns_per_step"] > 0 for row in rows)
