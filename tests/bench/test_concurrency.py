"""Parallel groups against sequential steps, and the async engine's overhead per step.

* Three independent external calls of 100 ms each (a sleep: what a blocking
  HTTP client does while it waits), declared as three steps and as one
  ``Parallel`` group, run by ``execute`` (threads) and by ``aexecute``
  (``asyncio.sleep`` on the loop). Reported: the group's wall time over its
  slowest call (the goal is at most 1.15x) and the sequential run over the
  slowest call (about 3x).
* Overhead per step: pipelines of 16 and 64 no-op steps, run by ``execute``
  and by ``aexecute`` (async operations on the loop; sync operations, which
  share one thread hop per run of consecutive sync steps). The cost of one
  step is the difference between the two sizes over 48 steps, which cancels
  what a run costs whatever its length.

Nothing is asserted on timings: figures are printed and written to
``bench-results/concurrency.json`` and ``.md``, with the machine they come from.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from orchestration import BaseOrchestrator, OperationContext, Parallel, Step
from tests.bench.load import machine, write_results

pytestmark = [pytest.mark.bench, pytest.mark.django_db(transaction=True)]

CALL_SECONDS = 0.1
CALLS = ("shipping", "tax", "fraud")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
SMALL, LARGE = 16, 64
OVERHEAD_RUNS = 300


def blocking_call(ctx: OperationContext) -> OperationContext:
    time.sleep(CALL_SECONDS)
    return ctx


async def async_call(ctx: OperationContext) -> OperationContext:
    await asyncio.sleep(CALL_SECONDS)
    return ctx


def noop(ctx: OperationContext) -> OperationContext:
    return ctx


async def async_noop(ctx: OperationContext) -> OperationContext:
    return ctx


class BenchBase(BaseOrchestrator[OperationContext, None, None], abstract=True):
    atomic = False

    def initialize_context(self, input: None, **kwargs: Any) -> OperationContext:
        return OperationContext(**kwargs)

    def build_result(self, ctx: OperationContext) -> None:
        return None


def define(name: str, pipeline: tuple[Step[Any], ...]) -> BaseOrchestrator[Any, Any, Any]:
    cls = type(
        f"Bench{name.title().replace('_', '')}",
        (BenchBase,),
        {"__module__": __name__, "metric_name": f"bench_{name}", "pipeline": pipeline},
    )
    return cls()


def calls(operation: Callable[..., Any]) -> tuple[Step[Any], ...]:
    return tuple(Step(name, operation) for name in CALLS)


def group_figures(run: Callable[[], Any], *, group: str | None) -> tuple[float, float, float]:
    """Median over the rounds of: the run, the group (or the run), the slowest call (ms)."""
    totals, walls, slowest = [], [], []
    for _ in range(ROUNDS):
        result = run()
        assert result.success, result.error
        totals.append(result.duration_ms)
        walls.append(result.step(group).duration_ms if group else result.duration_ms)
        slowest.append(max(result.step(name).duration_ms for name in CALLS))
    return statistics.median(totals), statistics.median(walls), statistics.median(slowest)


def per_step_us(run_small: Callable[[], Any], run_large: Callable[[], Any]) -> float:
    """Microseconds one more step costs: (large - small) / (LARGE - SMALL), medians of rounds."""
    costs = []
    for _ in range(ROUNDS):
        timings = []
        for run in (run_small, run_large):
            started = time.perf_counter_ns()
            for _ in range(OVERHEAD_RUNS):
                run()
            timings.append((time.perf_counter_ns() - started) / OVERHEAD_RUNS)
        costs.append((timings[1] - timings[0]) / (LARGE - SMALL) / 1000)
    return statistics.median(costs)


def test_parallel_groups_and_async_overhead() -> None:
    environment = machine(rounds=ROUNDS, runs_per_size=OVERHEAD_RUNS)
    sequential = define("sequential_calls", calls(blocking_call))
    threads = define("parallel_calls", (Parallel("calls", *calls(blocking_call)),))
    loop = define("async_parallel_calls", (Parallel("calls", *calls(async_call)),))

    wall = {
        "sequential (execute)": group_figures(lambda: sequential.execute(None), group=None),
        "group on threads (execute)": group_figures(lambda: threads.execute(None), group="calls"),
        "group on the loop (aexecute)": group_figures(
            lambda: async_to_sync(loop.aexecute)(None), group="calls"
        ),
    }

    def noops(operation: Callable[..., Any], size: int) -> tuple[Step[Any], ...]:
        return tuple(Step(f"step_{index}", operation) for index in range(size))

    engines: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for label, operation, asynchronous in (
        ("execute, sync operations", noop, False),
        ("aexecute, async operations", async_noop, True),
        ("aexecute, sync operations", noop, True),
        ("execute, async operations", async_noop, False),
    ):
        pair = []
        for size in (SMALL, LARGE):
            orchestrator = define(
                f"{'a' if asynchronous else ''}{operation.__name__}_{size}", noops(operation, size)
            )
            if asynchronous:

                async def many(orchestrator: Any = orchestrator) -> None:
                    await orchestrator.aexecute(None)

                pair.append(async_to_sync(many))
            else:
                pair.append(lambda orchestrator=orchestrator: orchestrator.execute(None))
        engines[label] = (pair[0], pair[1])
    overhead = {label: per_step_us(*pair) for label, pair in engines.items()}

    lines = [
        f"Three independent {CALL_SECONDS * 1000:.0f} ms calls, median of {ROUNDS} runs:",
        "",
        "| pipeline | run (ms) | group or run (ms) | slowest call (ms) | ratio to slowest |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, (total, group_ms, slowest) in wall.items():
        ratio = group_ms / slowest
        lines.append(f"| {label} | {total:.1f} | {group_ms:.1f} | {slowest:.1f} | {ratio:.3f}x |")
    lines += [
        "",
        (
            f"Overhead of one more step (pipelines of {SMALL} and {LARGE} no-op steps, "
            f"{OVERHEAD_RUNS} runs per size, median of {ROUNDS} rounds, metrics on):"
        ),
        "",
        "| engine | µs per step |",
        "| --- | ---: |",
        *(f"| {label} | {us:.1f} |" for label, us in overhead.items()),
    ]
    lines += ["", f"Environment: {json.dumps(environment)}"]
    path = write_results(
        "concurrency",
        "Parallel groups and the async engine",
        {
            "environment": environment,
            "call_ms": CALL_SECONDS * 1000,
            "rounds": ROUNDS,
            "wall_ms": {
                label: {"run": total, "group_or_run": group_ms, "slowest_call": slowest}
                for label, (total, group_ms, slowest) in wall.items()
            },
            "overhead_us_per_step": overhead,
        },
        lines,
    )
    print()
    print("\n".join(lines))
    print(f"\nresults: {path}")
