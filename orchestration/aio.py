"""``BaseOrchestrator.aexecute``: the same pipeline, awaited from async code.

Django's transactions and its ORM are synchronous: a transaction belongs to a
connection, and a connection to a thread. So the rules are:

* ``atomic = True`` (the default): the run needs one transaction from its first
  step to its last, so the whole run is one ``sync_to_async(thread_sensitive=True)``
  call holding ``transaction.atomic()``, the same code as ``execute``. Sync
  operations run in that thread; ``async def`` operations are sent back to the
  event loop (``async_to_sync``) and awaited there, where their timeout cancels
  them. An async operation's own ORM calls (``await Order.objects.aget(...)``)
  come back to the run's thread, inside the run's transaction.
* ``atomic = False``: there is no run transaction to hold, so nothing holds a
  thread between steps. ``async def`` operations are awaited on the event
  loop; consecutive sync operations run together in one
  ``sync_to_async(thread_sensitive=True)`` call; a parallel group's async
  steps are tasks on the loop and its sync steps run on worker threads.
  ``initialize_context`` and ``build_result`` run on the loop when they are
  coroutine functions, through ``sync_to_async`` otherwise.

Flags, retries (``asyncio.sleep`` between attempts), conditions, metrics,
records, compensation and the result are the engine's own: the step
bookkeeping is shared with ``execute``, only the awaiting differs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import iscoroutinefunction, sync_to_async

from orchestration import journal
from orchestration.context import (
    _group_cancelled,
    _step_deadline,
    current_request_id,
    new_request_id,
)
from orchestration.engine import collect
from orchestration.parallel import Branch, Group, _running_branch, snapshot
from orchestration.result import OrchestratorResult, StepRecord
from orchestration.steps import Parallel, Step

if TYPE_CHECKING:
    from orchestration.engine import BaseOrchestrator, _Run
    from orchestration.metrics import StepMetrics

perf_counter_ns = time.perf_counter_ns


async def execute(
    orchestrator: BaseOrchestrator[Any, Any, Any],
    input: Any,
    *,
    user: Any,
    request_id: str | None,
    idempotency_key: str | None,
    **extra: Any,
) -> OrchestratorResult[Any]:
    if orchestrator.atomic:
        run_in_thread = sync_to_async(orchestrator.execute, thread_sensitive=True)
        return await run_in_thread(
            input, user=user, request_id=request_id, idempotency_key=idempotency_key, **extra
        )
    request_id = request_id or current_request_id.get() or new_request_id()
    token = current_request_id.set(request_id)
    try:
        ctx = await _call(
            orchestrator.initialize_context, input, user=user, request_id=request_id, **extra
        )
        scope = journal.effect_scope(user, idempotency_key)
        result = await run(orchestrator._new_run(ctx, effect_scope=scope))
    finally:
        current_request_id.reset(token)
    collect(result)
    return result


async def _call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    if iscoroutinefunction(function):
        return await function(*args, **kwargs)
    return await sync_to_async(function, thread_sensitive=True)(*args, **kwargs)


async def run(run: _Run) -> OrchestratorResult[Any]:
    """A run without a transaction, on the event loop."""
    started = run._begin()
    try:
        await _run_main(run)
        if run.failure is not None:
            if run.completed:
                await sync_to_async(run._compensate, thread_sensitive=True)()
            data = None
        else:
            data = await _call(run.orchestrator.build_result, run.ctx)
    finally:
        elapsed_ns = run._end(started)
    return run._result(elapsed_ns, data)


async def _run_main(run: _Run) -> bool:
    """Async steps and groups on the loop, runs of sync steps in one thread hop each."""
    segment: list[tuple[Step[Any], StepMetrics | None]] = []
    for step, metrics in zip(run.steps, run.step_metrics, strict=True):
        if step.after_commit:
            continue
        # A journaled step records its intent through the database: the sync path does it.
        if not (step.is_async or isinstance(step, Parallel)) or step.recover is not None:
            segment.append((step, metrics))
            continue
        if segment and not await sync_to_async(run._run_steps, thread_sensitive=True)(segment):
            return False
        segment = []
        if isinstance(step, Parallel):
            record = await run_group(run, step)
        else:
            record = await run_step(run, step, metrics)
        if record.error is not None and step.critical:
            run.failure = record.error
            return False
    if segment and not await sync_to_async(run._run_steps, thread_sensitive=True)(segment):
        return False
    # Settle and queue (outside a transaction, on_commit callbacks run at once).
    return await sync_to_async(run._finish, thread_sensitive=True)()


async def run_step(run: _Run, step: Step[Any], metrics: StepMetrics | None) -> StepRecord:
    """``_Run._run_step`` for an ``async def`` operation, awaited on the loop."""
    record = StepRecord(step.name, "ok", step.critical, 1)
    run.records.append(record)
    ctx = run.ctx
    started = perf_counter_ns()
    try:
        if run._skips(step, ctx, record, metrics):
            return record
        deadline = None if step.timeout is None else time.perf_counter() + step.timeout
        token = _step_deadline.set(deadline)
        try:
            while True:
                before = None if run.group is None else snapshot(ctx)
                try:
                    returned = await run._within_budget(step, step.operation(ctx))
                    ctx = run._accept(step, ctx, returned, before)
                    break
                except Exception as exc:
                    wait = run._retry_delay(step, record, exc, deadline, metrics)
                    if wait is None:
                        raise
                    await asyncio.sleep(wait)
                    record.attempts += 1
        finally:
            _step_deadline.reset(token)
    except Exception as exc:
        run._failed(step, record, exc, metrics, started)
        return record
    run._succeeded(step, record, ctx, metrics, started)
    return record


async def run_group(parent: _Run, definition: Parallel[Any]) -> StepRecord:
    """A group on the loop: async steps as tasks, sync ones on worker threads."""
    group = Group(parent, definition)
    if group.skipped():
        return group.record
    tasks: dict[asyncio.Future[Any], Branch] = {}
    for branch in group.branches:
        task: asyncio.Future[Any]
        if branch.step.is_async:
            task = asyncio.ensure_future(_run_async_branch(branch, group))
        else:
            in_thread = sync_to_async(branch.run_in_thread, thread_sensitive=False)
            task = asyncio.ensure_future(in_thread(group.cancelled))
        tasks[task] = branch
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            ended = sorted(done, key=lambda task: group.branches.index(tasks[task]))
            for task in ended:
                if not task.cancelled() and task.exception() is None and group.observe(tasks[task]):
                    for waiting in pending:
                        if tasks[waiting].step.is_async:
                            waiting.cancel()
    except asyncio.CancelledError:
        # The request itself is cancelled: stop the async steps, let threads end, then go.
        group.cancelled.set()
        for task in tasks:
            if tasks[task].step.is_async:
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for task in tasks:
        if not task.cancelled():
            task.result()  # an engine bug surfaces here, after every step ended
    return group.merge()


async def _run_async_branch(branch: Branch, group: Group) -> StepRecord:
    _group_cancelled.set(group.cancelled)
    _running_branch.set((group.definition.name, branch.step.name))
    try:
        return await run_step(branch.run, branch.step, branch.metrics)
    except asyncio.CancelledError:
        record = branch.record
        if record is not None and record.status == "ok":
            record.status = "cancelled"
            record.duration_ms = (perf_counter_ns() - group.started) / 1e6
        raise
