"""Running a ``Parallel`` group: branches on copies of the context, outputs merged.

The rules, enforced here:

* Each branch runs on its own shallow copy of the run's context, with fresh
  ``errors``, ``results`` and ``metadata`` containers, so no two threads ever
  write to the same object the engine owns. When every branch has ended, the
  fields each branch declared in ``outputs`` are copied back, in declared
  order; rebinding any other field (or adding to ``results``/``metadata``)
  fails the step with ``undeclared_output``. Mutating an object the context
  points to (``ctx.order.total = ...``) cannot be seen: do not.
* A branch never uses the database. The run's transaction belongs to the
  run's thread; a query from a branch (any thread, any alias) is refused by an
  execute wrapper with ``database_in_parallel_group``, before it reaches the
  server. A connection a worker thread opened is closed when its branch ends.
* When a critical branch fails, the group is cancelled: branches that have not
  started never start (status ``cancelled``), retries stop, ``ctx.remaining()``
  drops to zero and ``ctx.cancelled()`` turns true for the ones still running,
  and async branches are cancelled outright. The group still waits for every
  branch to end (a thread is never abandoned), then the run fails with the
  error of the branch that failed first, and every branch that completed is
  compensated with the other completed steps.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import ContextVar
from copy import copy as shallow_copy
from typing import TYPE_CHECKING, Any

from django.db import connections

from orchestration.conf import get_config
from orchestration.context import OperationContext, StepError, _group_cancelled
from orchestration.errors import DefinitionError, InternalError
from orchestration.result import StepRecord
from orchestration.steps import Parallel, Step

if TYPE_CHECKING:
    from orchestration.engine import _Run

#: (group, step) of the branch running in this context, None outside groups.
_running_branch: ContextVar[tuple[str, str] | None] = ContextVar("running_branch", default=None)

#: The base context's containers: copied for each branch, so writes to them are visible.
_CONTAINERS = ("errors", "results", "metadata")

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class DatabaseInParallelGroup(InternalError):
    code = "database_in_parallel_group"


def refuse_queries_in_branches(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """Execute wrapper on every connection: a step of a parallel group may not query."""
    branch = _running_branch.get()
    if branch is not None:
        group, step = branch
        raise DatabaseInParallelGroup(
            f"Step {step!r} of parallel group {group!r} queried the database. Steps of a "
            "group run beside the run's transaction and may not use the database: "
            "move the query to a step before or after the group."
        )
    return execute(sql, params, many, context)


def guard_connection(connection: Any, **kwargs: Any) -> None:
    """``connection_created`` receiver: install the refusal on each new connection."""
    if refuse_queries_in_branches not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, refuse_queries_in_branches)


def pool() -> ThreadPoolExecutor:
    """The process's worker threads for sync branches (``ORCHESTRATION["PARALLEL_WORKERS"]``)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                get_config()["PARALLEL_WORKERS"], thread_name_prefix="orchestration-group"
            )
        return _pool


def _forget_pool() -> None:
    """A forked child (a gunicorn worker) starts its own threads."""
    global _pool
    _pool = None


os.register_at_fork(after_in_child=_forget_pool)


# -- the context of a branch ----------------------------------------------------------


def branch_context(ctx: OperationContext) -> OperationContext:
    """A shallow copy of ``ctx`` with its own ``errors``, ``results`` and ``metadata``."""
    copy = shallow_copy(ctx)
    copy.errors = []
    copy.results = dict(ctx.results)
    copy.metadata = dict(ctx.metadata)
    return copy


def snapshot(ctx: OperationContext) -> dict[str, Any]:
    """What ``check_writes`` compares against: each field's object, and the containers' items."""
    values: dict[str, Any] = {
        field.name: getattr(ctx, field.name) for field in dataclasses.fields(ctx)
    }
    values["results"] = dict(ctx.results)
    values["metadata"] = dict(ctx.metadata)
    return values


def check_writes(
    group: str, step: Step[Any], before: dict[str, Any], ctx: OperationContext
) -> None:
    """Raise when the step changed a field it does not declare in ``outputs``."""
    changed = [
        field.name
        for field in dataclasses.fields(ctx)
        if field.name not in _CONTAINERS and getattr(ctx, field.name) is not before[field.name]
    ]
    for container in ("results", "metadata"):
        items, old = getattr(ctx, container), before[container]
        if items.keys() != old.keys() or any(items[key] is not old[key] for key in items):
            changed.append(container)
    undeclared = [name for name in changed if name not in step.outputs]
    if undeclared:
        raise InternalError(
            f"Step {step.name!r} of parallel group {group!r} wrote {', '.join(undeclared)}, "
            f"which it does not declare in outputs={step.outputs!r}: a step of a group works "
            "on a copy of the context and only declared outputs are merged.",
            code="undeclared_output",
        )


def check_outputs(owner: str, context_type: type, steps: tuple[Step[Any], ...]) -> None:
    """At class definition: every declared output of a group's step is a context field."""
    names = {field.name for field in dataclasses.fields(context_type)}
    for entry in steps:
        if not isinstance(entry, Parallel):
            continue
        for step in entry.branches:
            for output in step.outputs:
                if output not in names or output in _CONTAINERS:
                    raise DefinitionError(
                        f"{owner}: step {step.name!r} of group {entry.name!r} declares output "
                        f"{output!r}, which is not a field of {context_type.__name__}"
                        + (" (the base containers are not outputs)." if output in names else ".")
                    )


# -- one group ------------------------------------------------------------------------


class Branch:
    """One step of a group, its run (on a context copy) and its record once it ran."""

    __slots__ = ("metrics", "run", "step")

    def __init__(self, parent: _Run, group: Parallel[Any], step: Step[Any]) -> None:
        self.step = step
        self.run = parent.branch(branch_context(parent.ctx), group.name)
        self.metrics = parent._metrics_of(step)

    @property
    def record(self) -> StepRecord | None:
        return self.run.records[0] if self.run.records else None

    def failed_critically(self) -> bool:
        record = self.record
        return record is not None and record.error is not None and self.step.critical

    def run_in_thread(self, cancelled: threading.Event) -> StepRecord:
        """The branch in a worker thread: no database, connections closed at the end."""
        _group_cancelled.set(cancelled)
        _running_branch.set((self.run.group or "", self.step.name))
        try:
            return self.run._run_step(self.step, self.metrics)
        finally:
            connections.close_all()


class Group:
    """The bookkeeping of one group in a run: shared by the thread and asyncio runners."""

    __slots__ = ("branches", "cancelled", "definition", "parent", "record", "started", "trigger")

    def __init__(self, parent: _Run, definition: Parallel[Any]) -> None:
        self.parent = parent
        self.definition = definition
        self.record = StepRecord(definition.name, "ok", definition.critical, 1, kind="group")
        parent.records.append(self.record)
        self.branches = [Branch(parent, definition, step) for step in definition.branches]
        self.cancelled = threading.Event()
        #: The first critical failure, which cancelled the others.
        self.trigger: StepError | None = None
        self.started = time.perf_counter_ns()

    def skipped(self) -> bool:
        """True (and the group and its steps recorded as skipped) when ``when`` is false."""
        when = self.definition.when
        if when is None or when(self.parent.ctx):
            return False
        self.record.status, self.record.attempts = "skipped", 0
        for branch in self.branches:
            step = branch.step
            skipped = StepRecord(step.name, "skipped", step.critical, group=self.record.name)
            self.parent.records.append(skipped)
        return True

    def observe(self, branch: Branch) -> bool:
        """Note an ended branch; True when it is the first critical failure (cancel the rest)."""
        if self.trigger is None and branch.failed_critically():
            record = branch.record
            assert record is not None
            self.trigger = record.error
            self.cancelled.set()
            return True
        return False

    def merge(self) -> StepRecord:
        """Fold the ended branches back into the run, in declared order."""
        parent, record = self.parent, self.record
        elapsed_ns = time.perf_counter_ns() - self.started
        record.duration_ms = elapsed_ns / 1e6
        for branch in self.branches:
            step, ran = branch.step, branch.record
            if ran is None:
                ran = StepRecord(step.name, "cancelled", step.critical, 0)
            ran.group = record.name
            parent.records.append(ran)
            if ran.status == "ok":
                for output in step.outputs:
                    setattr(parent.ctx, output, getattr(branch.run.ctx, output))
            parent.ctx.errors.extend(branch.run.ctx.errors)
            parent.completed.extend(branch.run.completed)
        if self.trigger is not None:
            record.status, record.error = "failed", self.trigger
        if parent.metrics is not None:
            parent.metrics.group(record.name)["ok" if self.trigger is None else "failed"].observe(
                elapsed_ns / 1e9
            )
        return record


def run_group(parent: _Run, definition: Parallel[Any]) -> StepRecord:
    """Run a group's steps on worker threads; the calling thread waits for all of them."""
    group = Group(parent, definition)
    if group.skipped():
        return group.record
    executor = pool()
    futures: dict[Future[StepRecord], Branch] = {}
    for branch in group.branches:
        context = contextvars.copy_context()
        futures[executor.submit(context.run, branch.run_in_thread, group.cancelled)] = branch
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        ended = sorted(done, key=lambda future: group.branches.index(futures[future]))
        for future in ended:
            ran = not future.cancelled() and future.exception() is None
            if ran and group.observe(futures[future]):
                for waiting in pending:
                    waiting.cancel()
    for future in futures:
        if not future.cancelled():
            future.result()  # an engine bug surfaces here, after every thread ended
    return group.merge()
