"""The engine: runs a declared pipeline of steps over a typed context.

Semantics, in the order they apply (see README.md):

1. Steps run in declared order; ``when(ctx)`` false skips a step.
2. A step fails by raising; typed errors carry code, message, details, status.
3. A critical failure stops the pipeline, rolls back every write of the run
   (one ``transaction.atomic()``), then runs the compensations of completed
   steps in reverse order.
4. A best-effort failure is recorded as a warning; the step ran in its own
   savepoint, so only its own writes are undone.
5. ``Retry`` retries the listed exception types with backoff and jitter.
6. ``after_commit`` steps are queued in the run's transaction (one task a run,
   see ``orchestration.outbox``) and run by a task worker after the commit;
   a run that fails queues nothing.
7. ``timeout`` is a budget: the deadline is exposed as ``ctx.remaining()`` and a
   step that returns late fails with code ``timeout``; an ``async def``
   operation is cancelled when its budget runs out.
8. A ``Parallel`` group runs its steps concurrently on copies of the context
   and merges their declared outputs (see ``orchestration.parallel``).

``aexecute`` runs the same pipeline from async code (see ``orchestration.aio``).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import inspect
import logging
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Coroutine, Iterable, Sequence
from functools import cache
from types import new_class
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, get_args, get_origin

from asgiref.sync import SyncToAsync, async_to_sync
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.db.models import Model

from orchestration import batch, journal, parallel, registry
from orchestration.conf import get_config
from orchestration.context import (
    OperationContext,
    StepError,
    _effect_key,
    _step_deadline,
    collected_runs,
    current_request_id,
    new_request_id,
    remaining_budget,
    sleep_unless_cancelled,
)
from orchestration.errors import (
    DefinitionError,
    InternalError,
    OrchestrationError,
    ServiceUnavailable,
    StepTimeout,
    TransactionConflict,
    classify,
)
from orchestration.metrics import OrchestratorMetrics, StepMetrics, end_run, observe
from orchestration.result import OrchestratorResult, StepRecord
from orchestration.runs import run_finished
from orchestration.scope import StepScope
from orchestration.steps import (
    NAME,
    TRANSACTION_STEP,
    Parallel,
    Step,
    default_metric_name,
    validate_pipeline,
)

perf_counter_ns = time.perf_counter_ns

CtxT = TypeVar("CtxT", bound=OperationContext)
ResultT = TypeVar("ResultT")
InputT = TypeVar("InputT")

logger = logging.getLogger("orchestration")


def _context_type(cls: type) -> type | None:
    """The context dataclass a class declares (``BaseOrchestrator[Ctx, ...]``), if it can tell."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if get_origin(base) is not None and issubclass(get_origin(base), BaseOrchestrator):
                argument = get_args(base)[0]
                if isinstance(argument, type) and dataclasses.is_dataclass(argument):
                    return argument
    return None


def _timed_out(step: Step[Any]) -> StepTimeout:
    return StepTimeout(f"Step {step.name!r} took longer than its {step.timeout} s budget.")


class _Abort(Exception):
    """Leaves the transaction block so that it rolls back."""


def error_from_exception(step: str, exc: BaseException) -> StepError:
    """What the client is told of a step's exception (see ``errors.classify``)."""
    typed = classify(exc, where=f"step {step}")
    return StepError(
        step=step,
        code=typed.code,
        message=typed.message,
        details=typed.details,
        status=typed.status,
    )


class BaseOrchestrator(Generic[CtxT, ResultT, InputT]):
    """Declare ``pipeline`` (or override ``get_pipeline``), ``initialize_context``
    and ``build_result``; call ``execute``.

    Class options: ``atomic`` (default True: one transaction for the run),
    ``database`` (the alias), ``metric_name`` (defaults to the class name in
    snake case without the ``Orchestrator`` suffix), ``conflict_attempts``
    (runs of a pipeline whose transaction the database aborted for a deadlock
    or a serialization failure, see ``execute``). Pass ``abstract=True`` in the
    class statement for an intermediate base with no pipeline.
    """

    pipeline: ClassVar[Sequence[Step[Any]]] = ()
    atomic: ClassVar[bool] = True
    database: ClassVar[str] = DEFAULT_DB_ALIAS
    metric_name: ClassVar[str] = ""
    conflict_attempts: ClassVar[int] = 3

    _checked_pipeline: ClassVar[tuple[Step[Any], ...]] = ()
    _metrics: ClassVar[OrchestratorMetrics | None] = None
    _plan: ClassVar[_Plan | None] = None

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        owner = f"{cls.__module__}.{cls.__qualname__}"
        if "metric_name" not in cls.__dict__:
            cls.metric_name = default_metric_name(cls.__name__)
        if not NAME.match(cls.metric_name):
            raise DefinitionError(
                f"{owner}: metric_name {cls.metric_name!r} must be lower_snake_case."
            )
        steps = tuple(cls.get_pipeline())
        validate_pipeline(owner, steps)
        context_type = _context_type(cls)
        if context_type is not None:
            parallel.check_outputs(owner, context_type, steps)
        cls._checked_pipeline = steps
        cls._metrics = None
        cls._plan = None
        registry.register(cls)

    # -- to override ---------------------------------------------------------------

    @classmethod
    def get_pipeline(cls) -> Sequence[Step[CtxT]]:
        """The steps to run; override to compute them (from settings, for example)."""
        return cls.pipeline

    def initialize_context(self, input: InputT, **kwargs: Any) -> CtxT:
        """Build the run's context; ``kwargs`` hold ``user``, ``request_id`` and extras."""
        raise NotImplementedError(f"{type(self).__name__} must define initialize_context().")

    def build_result(self, ctx: CtxT) -> ResultT:
        """Turn the final context into the data of a successful result."""
        raise NotImplementedError(f"{type(self).__name__} must define build_result().")

    def run_subject(self, ctx: CtxT, result: OrchestratorResult[ResultT]) -> Model | None:
        """The row a recorded run is about (an order, say), for links from the admin.

        Called only for runs that are recorded. Return a row that exists after
        the run: on a failure the run's own writes were rolled back.
        """
        return None

    # -- running -------------------------------------------------------------------

    def execute(
        self,
        input: InputT,
        *,
        user: Any = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> OrchestratorResult[ResultT]:
        """Run the pipeline. Raises only for programming errors, never for a step failure.

        When the database aborts the run's transaction to break a deadlock or a
        serialization conflict, nothing of the run was written: if no step with
        an external effect (one with a compensation) had completed either, the
        whole run starts again from a new context, up to ``conflict_attempts``
        runs. Otherwise, or when the transaction is not the run's own (an outer
        ``atomic`` block), the answer is the 409 ``transaction_conflict``.

        ``idempotency_key`` is the client's key for this request (the
        ``Idempotency-Key`` header, for example): with the user it makes the keys
        of journaled effects, so that a retry of the same request reaches the
        external systems under the same keys. Without one every run is new.
        """
        current = current_request_id.get()
        request_id = request_id or current or new_request_id()
        # Usually TimingMiddleware has set it already: then there is nothing to set.
        token = None if request_id == current else current_request_id.set(request_id)
        try:
            scope = None if idempotency_key is None else journal.effect_scope(user, idempotency_key)
            attempt = 1
            while True:
                ctx = self.initialize_context(input, user=user, request_id=request_id, **extra)
                run = self._new_run(ctx, effect_scope=scope)
                result = run.execute()
                # Only a run that owned its transaction (no outer atomic block) starts again.
                if (
                    run.failure is None
                    or attempt >= self.conflict_attempts
                    or not (
                        run.may_run_again() and self.atomic and not self._in_outer_transaction()
                    )
                ):
                    break
                logger.info("transaction conflict: running %s again", self.metric_name)
                time.sleep(random.uniform(0.005, 0.02) * attempt)
                attempt += 1
            run_finished(self, run.ctx, run.steps, result)
        finally:
            if token is not None:
                current_request_id.reset(token)
        collect(result)
        return result

    async def aexecute(
        self,
        input: InputT,
        *,
        user: Any = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> OrchestratorResult[ResultT]:
        """``execute`` for async code (ASGI views); see ``orchestration.aio`` for the rules."""
        from orchestration import aio

        return await aio.execute(
            self,
            input,
            user=user,
            request_id=request_id,
            idempotency_key=idempotency_key,
            **extra,
        )

    def _new_run(self, ctx: OperationContext, *, effect_scope: str | None) -> _Run:
        if not isinstance(ctx, OperationContext):
            raise TypeError(
                f"{type(self).__name__}.initialize_context() returned {type(ctx).__name__}, "
                "not an OperationContext."
            )
        cls = type(self)
        pipeline, config = cls.get_pipeline(), get_config()
        plan = cls.__dict__.get("_plan")
        if plan is None or plan.pipeline is not pipeline or plan.config is not config:
            steps, metrics = self._steps(), self._step_metrics()
            plan = cls._plan = _Plan(
                pipeline,
                config,
                steps,
                metrics,
                (None,) * len(steps) if metrics is None else metrics.for_steps(steps),
                tuple(step for step in steps if step.after_commit),
            )
        return _Run(
            self,
            ctx,
            plan.steps,
            plan.metrics,
            effect_scope=effect_scope,
            step_metrics=plan.step_metrics,
            deferred=plan.deferred,
        )

    def _in_outer_transaction(self) -> bool:
        return transaction.get_connection(self.database).in_atomic_block

    def _steps(self) -> tuple[Step[Any], ...]:
        cls = type(self)
        steps = cls.get_pipeline()
        if steps is cls._checked_pipeline:
            return steps
        steps = tuple(steps)
        if steps != cls._checked_pipeline:
            validate_pipeline(f"{cls.__module__}.{cls.__qualname__}", steps)
            cls._checked_pipeline = steps
        return cls._checked_pipeline

    @classmethod
    def _step_metrics(cls) -> OrchestratorMetrics | None:
        if not get_config()["METRICS"]:
            return None
        if cls.__dict__.get("_metrics") is None:
            cls._metrics = OrchestratorMetrics(cls.metric_name)
        return cls._metrics


def collect(result: OrchestratorResult[Any]) -> None:
    """Hand the result to TimingMiddleware when a request is being served."""
    runs = collected_runs.get()
    if runs is not None:
        runs.append(result)


async def _awaited(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


_thread_loops = threading.local()


def run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run an async operation from the engine's sync code, and return its result.

    Under ``aexecute`` the sync code runs in a ``sync_to_async`` thread: the
    coroutine goes back to the caller's event loop (where its ORM calls return
    to this thread). Elsewhere (``execute`` in a WSGI worker, a group's worker
    thread) it runs on an event loop this thread keeps, not one made per call.
    """
    outer = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if outer is not None and outer.is_running():
        return async_to_sync(_awaited)(coroutine)
    runner = getattr(_thread_loops, "runner", None)
    if runner is None:
        runner = _thread_loops.runner = asyncio.Runner()
    return runner.run(coroutine, context=contextvars.copy_context())


def execute_step(
    step: Step[Any], ctx: CtxT, *, database: str = DEFAULT_DB_ALIAS
) -> tuple[CtxT, StepRecord]:
    """Run one step on ``ctx`` as a pipeline would, without an orchestrator.

    The condition, savepoint, retry, timeout and error translation apply; no
    metrics are recorded and nothing is compensated, except that a journaled
    step's entry ends as a run would end it: settled when the step succeeded,
    its effect undone when it failed. Returns the context the step left and its
    record (``orchestration.testing.run_step`` builds on it).
    """
    run = _Run(_step_host(database)(), ctx, (step,), None)
    record = run._run_step(step, None)
    if run.effects:
        if record.error is None:
            run._close(())
        else:
            run._compensate()
    after = run.ctx
    assert isinstance(after, type(ctx)), "the engine accepts only the context's own type"
    return after, record


@cache
def _step_host(database: str) -> type[BaseOrchestrator[Any, Any, Any]]:
    """An orchestrator class (abstract: never registered) using ``database``."""
    return new_class(
        "StepHost",
        (BaseOrchestrator,),
        {"abstract": True},
        lambda ns: ns.update(database=database, metric_name="execute_step"),
    )


class _Plan(NamedTuple):
    """What every run of an orchestrator class needs, found once: valid while
    ``get_pipeline()`` returns the same object and the settings are unchanged."""

    pipeline: Sequence[Step[Any]]
    config: dict[str, Any]
    steps: tuple[Step[Any], ...]
    metrics: OrchestratorMetrics | None
    step_metrics: tuple[StepMetrics | None, ...]
    deferred: tuple[Step[Any], ...]


class _Run:
    """The state of one execution (or of one branch of a parallel group)."""

    __slots__ = (
        "commit_unknown",
        "completed",
        "ctx",
        "deferred",
        "effect_scope",
        "effects",
        "failure",
        "group",
        "metrics",
        "observed",
        "orchestrator",
        "owner",
        "records",
        "step_metrics",
        "steps",
        "worker",
    )

    def __init__(
        self,
        orchestrator: BaseOrchestrator[Any, Any, Any],
        ctx: OperationContext,
        steps: tuple[Step[Any], ...],
        metrics: OrchestratorMetrics | None,
        *,
        effect_scope: str | None = None,
        worker: bool = False,
        step_metrics: tuple[StepMetrics | None, ...] | None = None,
        deferred: tuple[Step[Any], ...] | None = None,
    ) -> None:
        self.orchestrator = orchestrator
        #: Running a queued step in a task worker: there is no run transaction to
        #: protect, so no savepoint (and no transaction held across the step's I/O).
        self.worker = worker
        self.ctx = ctx
        self.steps = steps
        self.metrics = metrics
        if step_metrics is None:
            step_metrics = (None,) * len(steps) if metrics is None else metrics.for_steps(steps)
        self.step_metrics = step_metrics
        #: The after-commit steps among ``steps`` (found once per class: ``_Plan``).
        self.deferred = (
            tuple(step for step in steps if step.after_commit) if deferred is None else deferred
        )
        self.records: list[StepRecord] = []
        #: Plain steps' histogram observations, written at the run's end (``metrics.end_run``).
        self.observed: list[tuple[Any, float]] = []
        #: Completed steps that have a compensation, in the order they ran.
        self.completed: list[tuple[Step[Any], StepRecord]] = []
        self.failure: StepError | None = None
        #: Journaled effects this run claimed, by step name; ``owner`` identifies the run
        #: (made on the first claim: a run without journaled steps pays nothing).
        self.effect_scope = effect_scope
        self.effects: dict[str, journal.Effect] = {}
        self.owner = ""
        #: The parallel group this run is a branch of: no savepoints, it has no transaction.
        self.group: str | None = None
        #: The connection broke while the run's transaction committed: it may have.
        self.commit_unknown = False

    def branch(self, ctx: OperationContext, group: str) -> _Run:
        """A run of one branch of ``group`` on ``ctx``, a copy of this run's context."""
        branch = _Run(self.orchestrator, ctx, (), None)
        branch.group = group
        return branch

    def execute(self) -> OrchestratorResult[Any]:
        orchestrator = self.orchestrator
        started = self._begin()
        try:
            if orchestrator.atomic:
                self._run_in_transaction()
            elif self._run_steps(zip(self.steps, self.step_metrics, strict=True)):
                self._finish()
            if self.failure is not None:
                self._compensate()  # may find that the run committed after all
            data = None if self.failure is not None else orchestrator.build_result(self.ctx)
        finally:
            elapsed_ns = self._end(started)
        return self._result(elapsed_ns, data)

    def _begin(self) -> int:
        if self.metrics is not None:
            self.metrics.start(self)
        return perf_counter_ns()

    def _end(self, started: int) -> int:
        """The run's wall time (ns); its metrics written, all at once."""
        elapsed_ns = perf_counter_ns() - started
        metrics = self.metrics
        if metrics is not None:
            metrics.finish(self)
            outcome = "success" if self.failure is None else "failure"
            end_run(self.observed, metrics.duration[outcome], elapsed_ns / 1e9)
        return elapsed_ns

    def _result(self, elapsed_ns: int, data: Any) -> OrchestratorResult[Any]:
        failure = self.failure
        return OrchestratorResult(
            failure is None,
            self.orchestrator.metric_name,
            self.ctx.request_id,
            data,
            failure,
            self.ctx.errors[:],
            elapsed_ns / 1e6,
            self.records,
        )

    def may_run_again(self) -> bool:
        """The database aborted the run for a concurrent one, and no external effect
        can have happened: no step with a compensation had completed, and no
        journaled step had claimed its effect (its call may have gone out)."""
        return (
            self.failure is not None
            and self.failure.code == TransactionConflict.code
            and not self.completed
            and not self.effects
        )

    def _run_in_transaction(self) -> None:
        using = self.orchestrator.database
        committing = False
        try:
            with transaction.atomic(using=using):
                if not self._run_main():
                    raise _Abort
                committing = True
        except _Abort:
            pass
        except DatabaseError as exc:
            # Beginning the transaction failed (nothing was written), or committing it did
            # (then the server may have committed before the connection broke).
            if self.failure is None:
                self.failure = error_from_exception(TRANSACTION_STEP, exc)
            self.commit_unknown = committing

    def _run_main(self) -> bool:
        """Run the in-transaction steps, then settle the journaled effects and queue the
        after-commit steps; False when the run failed."""
        if not self._run_steps(zip(self.steps, self.step_metrics, strict=True)):
            return False
        return self._finish()

    def _finish(self) -> bool:
        """After the last in-transaction step: settle and queue (``_close``), if needed."""
        deferred = self.deferred
        return (not self.effects and not deferred) or self._close(deferred)

    def _close(self, deferred: tuple[Step[Any], ...]) -> bool:
        """The run's last writes, one statement on PostgreSQL (``orchestration.batch``):
        the journal entries settled, the after-commit steps queued. False (nothing
        queued, the records of the after-commit steps gone) if that failed or an
        entry was lost."""
        using = self.orchestrator.database
        statements = []
        if self.effects:
            keys = [effect.key for effect in self.effects.values()]
            statements.append(journal.settle_statement(keys, owner=self.owner, using=using))
        records, warnings = len(self.records), len(self.ctx.errors)
        queued = None
        if deferred:
            # Imported here: the outbox uses models, and this module loads with the app.
            from orchestration import outbox

            queued = outbox.prepare(self, deferred)
            if queued is not None:
                statements.extend(queued.statements)
        try:
            settled = batch.send(statements, using=using) if statements else 0
        except DatabaseError as exc:
            self.failure = error_from_exception(TRANSACTION_STEP, exc)
        else:
            if settled == len(self.effects):
                if queued is not None:
                    queued.written()
                return True
            self._lost_lease()
        del self.records[records:]
        del self.ctx.errors[warnings:]
        return False

    def _run_steps(self, steps: Iterable[tuple[Step[Any], StepMetrics | None]]) -> bool:
        records, observed, branch = self.records, self.observed, self.group is not None
        for step, metrics in steps:
            if step.plain and not branch:
                # The fast path, inline: no condition, savepoint, retry or budget to apply.
                ctx = self.ctx
                started = perf_counter_ns()
                try:
                    returned = step.operation(ctx)
                    if returned is not ctx:
                        returned = self._check_return(step, ctx, returned)
                except Exception as exc:
                    record = StepRecord(step.name, "ok", True, 1)
                    records.append(record)
                    self._failed(step, record, exc, metrics, started)
                    self.failure = record.error
                    return False
                elapsed_ns = perf_counter_ns() - started
                record = StepRecord(step.name, "ok", True, 1, elapsed_ns / 1e6)
                records.append(record)
                if metrics is not None:
                    observed.append((metrics.ok, elapsed_ns / 1e9))
                self.ctx = returned
                if step.compensate is not None:
                    self.completed.append((step, record))
                continue
            if step.after_commit:
                continue
            if isinstance(step, Parallel):
                record = parallel.run_group(self, step)
            else:
                record = self._run_step(step, metrics)
            if record.error is not None and step.critical:
                self.failure = record.error
                return False
        return True

    def _lost_lease(self) -> None:
        logger.error(
            "the run outlived the lease of its journaled effects; recovery took them over",
            extra={"request_id": self.ctx.request_id},
        )
        lost = ServiceUnavailable(
            "The request took too long and was rolled back; try again.", code="effect_lease_lost"
        )
        self.failure = error_from_exception(TRANSACTION_STEP, lost)

    def _metrics_of(self, step: Step[Any]) -> StepMetrics | None:
        if self.metrics is None:
            return None
        return self.metrics.step(step.name, critical=step.critical)

    def _run_step(self, step: Step[Any], metrics: StepMetrics | None) -> StepRecord:
        """Run one step; ``metrics`` are its label children (None when metrics are off)."""
        ctx = self.ctx
        record = StepRecord(step.name, "ok", step.critical, 1)
        self.records.append(record)
        started = perf_counter_ns()
        try:
            if step.plain and self.group is None:
                returned = step.operation(ctx)
                ctx = returned if returned is ctx else self._check_return(step, ctx, returned)
            else:
                called = self._call_with_policies(step, ctx, record, metrics)
                if called is None:  # skipped: `when` was false
                    return record
                ctx = called
        except Exception as exc:
            self._failed(step, record, exc, metrics, started)
            if step.name in self.effects:
                # The external call may have taken effect before the failure (a timeout).
                self.completed.append((step, record))
            return record
        self._succeeded(step, record, ctx, metrics, started)
        return record

    def _succeeded(
        self,
        step: Step[Any],
        record: StepRecord,
        ctx: OperationContext,
        metrics: StepMetrics | None,
        started: int,
    ) -> None:
        elapsed_ns = perf_counter_ns() - started
        record.duration_ms = elapsed_ns / 1e6
        if metrics is not None:
            observe(metrics.ok, elapsed_ns / 1e9)
        self.ctx = ctx
        if step.compensate is not None or step.recover is not None:
            self.completed.append((step, record))

    def _failed(
        self,
        step: Step[Any],
        record: StepRecord,
        exc: Exception,
        metrics: StepMetrics | None,
        started: int,
    ) -> None:
        elapsed_ns = perf_counter_ns() - started
        record.duration_ms = elapsed_ns / 1e6
        self._fail(step, record, exc, metrics, elapsed_ns)

    def _call(self, step: Step[Any], ctx: OperationContext) -> OperationContext:
        before = None if self.group is None else parallel.snapshot(ctx)
        if step.is_async:
            # On the caller's event loop when there is one (aexecute), else on a new one.
            returned = run_coroutine(self._within_budget(step, step.operation(ctx)))
        else:
            returned = step.operation(ctx)
        return self._accept(step, ctx, returned, before)

    def _accept(
        self,
        step: Step[Any],
        ctx: OperationContext,
        returned: Any,
        before: dict[str, Any] | None,
    ) -> OperationContext:
        """The context a step returned, checked (and, in a group, its writes checked)."""
        accepted = returned if returned is ctx else self._check_return(step, ctx, returned)
        if before is not None:
            parallel.check_writes(self.group or "", step, before, accepted)
        return accepted

    @staticmethod
    async def _within_budget(step: Step[Any], awaitable: Awaitable[Any]) -> Any:
        """Await an async operation, cancelled when the step's budget runs out."""
        remaining = remaining_budget()
        if remaining is None:
            return await awaitable
        budget = asyncio.timeout(remaining)
        try:
            async with budget:
                return await awaitable
        except TimeoutError:
            if budget.expired():
                raise _timed_out(step) from None
            raise

    @staticmethod
    def _check_return(step: Step[Any], ctx: OperationContext, returned: Any) -> OperationContext:
        """Accept a copy of the context (``dataclasses.replace``); anything else is a bug."""
        if not isinstance(returned, type(ctx)):
            raise InternalError(
                f"Step {step.name!r}: operation {step.operation.__qualname__} returned "
                f"{type(returned).__name__}, not the context ({type(ctx).__name__}).",
                code="invalid_return",
            )
        return returned

    def _call_with_policies(
        self,
        step: Step[Any],
        ctx: OperationContext,
        record: StepRecord,
        metrics: StepMetrics | None,
    ) -> OperationContext | None:
        """Everything but the fast path: condition, savepoint, retry, timeout.

        Returns None when the step is skipped. Best-effort steps and each
        attempt of a retried step run in a savepoint; a plain critical step
        with only a timeout does not need one.
        """
        if self._skips(step, ctx, record, metrics):
            return None
        using = self.orchestrator.database
        savepoint = step.needs_savepoint and self.group is None and not self.worker
        deadline = None if step.timeout is None else time.perf_counter() + step.timeout
        # A parallel branch stays off the database: no statement budget there.
        query_deadline = deadline if self.group is None else None
        if step.recover is not None:
            effect_token = _effect_key.set(self._claim(step).key)
        token = _step_deadline.set(deadline)
        try:
            while True:
                try:
                    # The savepoint and the statement budget open at the first query.
                    with StepScope(using, savepoint=savepoint, deadline=query_deadline):
                        returned = self._call(step, ctx)
                        if deadline is not None and time.perf_counter() > deadline:
                            raise _timed_out(step)
                    return returned
                except Exception as exc:
                    if (
                        deadline is not None
                        and not isinstance(exc, OrchestrationError)
                        and time.perf_counter() > deadline
                    ):
                        # Cut short by its budget (a statement timeout, a socket deadline);
                        # a typed error already says what ran out, and keeps its code.
                        raise StepTimeout(
                            f"Step {step.name!r} ran out of its {step.timeout} s budget."
                        ) from exc
                    wait = self._retry_delay(step, record, exc, deadline, metrics)
                    if wait is None or sleep_unless_cancelled(wait):
                        raise
                    record.attempts += 1
        finally:
            _step_deadline.reset(token)
            if step.recover is not None:
                _effect_key.reset(effect_token)

    def _claim(self, step: Step[Any]) -> journal.Effect:
        """Record the step's intent before its first attempt (see ``orchestration.journal``)."""
        if not self.owner:
            self.owner = uuid.uuid4().hex
        effect = journal.claim(
            scope=self.effect_scope or f"run:{self.owner}",
            orchestrator=type(self.orchestrator).metric_name,
            step=step.name,
            request_id=self.ctx.request_id,
            owner=self.owner,
            using=self.orchestrator.database,
        )
        self.effects[step.name] = effect
        return effect

    @staticmethod
    def _skips(
        step: Step[Any], ctx: OperationContext, record: StepRecord, metrics: StepMetrics | None
    ) -> bool:
        """True (and the step recorded as skipped) when its condition is false."""
        if step.when is None or step.when(ctx):
            return False
        record.status, record.attempts = "skipped", 0
        if metrics is not None:
            metrics.skipped.inc()
        return True

    @staticmethod
    def _retry_delay(
        step: Step[Any],
        record: StepRecord,
        exc: Exception,
        deadline: float | None,
        metrics: StepMetrics | None,
    ) -> float | None:
        """Seconds to wait before retrying after ``exc``; None when it is not retried
        (not a listed type, no attempts left, or the wait would outlast the budget)."""
        retry = step.retry
        if retry is None or record.attempts >= retry.attempts or not isinstance(exc, retry.on):
            return None
        wait = retry.delay(record.attempts)
        if deadline is not None and time.perf_counter() + wait > deadline:
            return None
        if metrics is not None:
            metrics.retries.inc()
        return wait

    def _fail(
        self,
        step: Step[Any],
        record: StepRecord,
        exc: Exception,
        metrics: StepMetrics | None,
        elapsed_ns: int,
    ) -> None:
        error = error_from_exception(step.name, exc)
        record.error = error
        record.status = "timed_out" if isinstance(exc, StepTimeout) else "failed"
        if metrics is not None:
            observe(metrics.duration[record.status], elapsed_ns / 1e9)
            metrics.failed(error.code)
        if not step.critical:
            self.ctx.errors.append(error)
            logger.warning(
                "best-effort step %s failed (%s): %s",
                step.name,
                error.code,
                error.message,
                extra={"request_id": self.ctx.request_id},
            )

    def _compensate(self) -> None:
        """Undo the completed steps, last first, once the run's transaction is known
        to have rolled back. After a commit whose outcome is unknown the journal
        decides: a run whose entries were settled committed, and keeps its result."""
        if self.commit_unknown and self.effects:
            outcome = journal.committed(
                [effect.key for effect in self.effects.values()],
                owner=self.owner,
                using=self.orchestrator.database,
            )
            if outcome is not False:
                logger.error(
                    "the commit's outcome is unknown and the journal %s: nothing is undone here",
                    "shows it committed" if outcome else "cannot be read (recovery decides)",
                    extra={"request_id": self.ctx.request_id},
                )
                if outcome:
                    self.failure = None
                return
        for step, record in reversed(self.completed):
            metrics = self._metrics_of(step)
            effect = self.effects.get(step.name)
            if effect is not None and not self._begin_compensation(effect):
                continue
            try:
                if step.compensate is not None and record.error is None:
                    done = step.compensate(self.ctx)
                    if inspect.isawaitable(done):
                        run_coroutine(_awaited(done))
                elif step.recover is not None and effect is not None:
                    step.recover(effect)
            except Exception as exc:
                logger.error(
                    "compensation of step %s failed",
                    step.name,
                    exc_info=(type(exc), exc, exc.__traceback__),
                    extra={"request_id": self.ctx.request_id},
                )
                record.compensation = "failed"
                record.compensation_error = f"{type(exc).__name__}: {exc}"
                if metrics is not None:
                    metrics.compensated("failed")
            else:
                if record.error is None:
                    record.status = "compensated"
                if metrics is not None:
                    metrics.compensated("ok")
            if effect is not None:
                self._record_compensation(effect, record.compensation_error)

    def _begin_compensation(self, effect: journal.Effect) -> bool:
        """Mark the entry ``compensating`` before the undo; False: leave it alone."""
        try:
            if journal.begin_compensation(
                effect, owner=self.owner, using=self.orchestrator.database
            ):
                return True
            logger.error(
                "the journal entry of %s.%s is no longer this run's to undo",
                effect.orchestrator,
                effect.step,
                extra={"request_id": self.ctx.request_id},
            )
        except DatabaseError:
            logger.exception(
                "could not mark %s.%s as being undone; it stays pending for recovery",
                effect.orchestrator,
                effect.step,
                extra={"request_id": self.ctx.request_id},
            )
        return False

    def _record_compensation(self, effect: journal.Effect, error: str | None) -> None:
        """Close the journal entry, or leave it to recovery when even that fails."""
        try:
            journal.record_compensation(
                effect, owner=self.owner, error=error, using=self.orchestrator.database
            )
        except DatabaseError:
            logger.exception(
                "could not record the compensation of %s.%s; recovery will run it again "
                "after the lease",
                effect.orchestrator,
                effect.step,
                extra={"request_id": self.ctx.request_id},
            )
