"""After-commit steps as durable tasks (Django's Tasks API).

In the request, ``prepare`` builds one ``QueuedStep`` row per after-commit
step, which the engine writes in the run's own transaction with its last
statement (``orchestration.batch``; a transactional outbox): the rows exist
exactly when the run's data does, and a run that fails or rolls back queues
nothing. The run's rows are handed to the configured task backend as one
``orchestration.tasks.run_queued_step`` task, whatever their number:

- a backend that stores tasks in the same database (``django_tasks_db``) gets
  the task in the same transaction, so commit and dispatch are one;
- any other backend (RQ on Redis, ...) gets it after the commit. A crash
  between the two loses nothing: ``relay`` (the ``relay_queued_steps``
  command) dispatches again every row still queued a while after its commit.

The worker that takes the task first hands each row but the first to the
backend as a task of its own (``fan_out``), then runs the first: a step whose
mail server stalls holds up no other step, and the request paid for one task
row, not one per step.

In the worker, ``run_queued`` claims the row (``queued`` -> ``running``, with
a lease as long as the step's budget), rebuilds the context the step declared
(``Step(uses=...)``), and runs the step with its retry policy and time budget.
Delivery is at least once; the claim makes the effect once: a redelivered
task for a step that is done or running under a live lease does nothing. A
worker killed mid-step leaves an expired lease, and the relay dispatches the
row again. A step that fails with a 503-class error (the mail server is down)
is queued again with backoff, up to ``QUEUE_MAX_ATTEMPTS`` deliveries.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, partial
from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from django.db import router, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.dispatch import receiver
from django.utils import timezone

from orchestration import batch, registry
from orchestration.batch import Statement
from orchestration.conf import get_config
from orchestration.context import StepError, current_request_id, new_request_id
from orchestration.metrics import queued_step_metrics
from orchestration.models import QueuedStep
from orchestration.payload import restore, snapshot
from orchestration.result import StepRecord

if TYPE_CHECKING:
    from orchestration.engine import BaseOrchestrator, _Run
    from orchestration.steps import Step

logger = logging.getLogger("orchestration")


def setting(name: str) -> Any:
    return get_config()[name]


# -- in the request ------------------------------------------------------------------


@dataclass(slots=True)
class Queued:
    """After-commit steps ready to be written: send ``statements`` in the run's
    transaction (``orchestration.batch``), then call ``written``."""

    statements: list[Statement]
    written: Callable[[], None]


def prepare(run: _Run, steps: Sequence[Step[Any]]) -> Queued | None:
    """The rows that queue ``steps`` of ``run`` (records say ``queued``); None if none is."""
    orchestrator = type(run.orchestrator)
    using = run.orchestrator.database
    now = timezone.now()
    entries: list[QueuedStep] = []
    transactional = _stores_tasks_in(using)
    #: Steps that use the same fields share one encoding of them.
    payloads: dict[tuple[str, ...], dict[str, Any]] = {}
    for step in steps:
        metrics = run._metrics_of(step)
        if step.when is not None:
            try:
                wanted = step.when(run.ctx)
            except Exception as exc:
                record = StepRecord(step.name, "failed", step.critical)
                run.records.append(record)
                run._fail(step, record, exc, metrics, 0)
                continue
            if not wanted:
                run.records.append(StepRecord(step.name, "skipped", step.critical))
                if metrics is not None:
                    metrics.skipped.inc()
                continue
        entries.append(
            QueuedStep(
                orchestrator=orchestrator.metric_name,
                step=step.name,
                module=orchestrator.__module__,
                request_id=run.ctx.request_id,
                payload=payloads.get(step.uses)
                or payloads.setdefault(step.uses, snapshot(run.ctx, step.uses, step=step.name)),
                enqueued_at=now,
                next_dispatch_at=None
                if transactional
                else now + timedelta(seconds=setting("QUEUE_RELAY_AFTER")),
            )
        )
        run.records.append(StepRecord(step.name, "queued", step.critical))
    if not entries:
        return None
    ids = [str(entry.pk) for entry in entries]
    statements = [batch.insert(entries, using=using)]
    tasks: list[Any] = []
    if transactional:
        # Same database, same transaction: a failure here fails the run, nothing is half-queued.
        tasks = [_task_row(ids)]
        statements.append(batch.insert(tasks, using=using))
    counted = run.metrics is not None

    def written() -> None:
        if counted:
            for entry in entries:
                queued_step_metrics(entry.orchestrator, entry.step).queued.inc()
        if transactional:
            _announce(tasks)
        else:
            transaction.on_commit(partial(_dispatch_together, ids), using=using, robust=True)

    return Queued(statements, written)


#: The django-tasks-db releases, and the columns of its task table, that ``_task_row`` was
#: checked against (on Django 5.2 and 6.x, beside the backend's own ``enqueue``). Another
#: release fails the system check ``orchestration.E009`` (``task_row_problems``).
TASK_ROW_RELEASES = "0.13."
TASK_ROW_COLUMNS = frozenset(
    {
        "args_kwargs",
        "backend_name",
        "enqueued_at",
        "exception_class_path",
        "finished_at",
        "id",
        "priority",
        "queue_name",
        "return_value",
        "run_after",
        "started_at",
        "status",
        "task_path",
        "traceback",
        "worker_ids",
    }
)


def task_row_problems() -> list[str]:
    """Why ``_task_row`` cannot be trusted with the installed django-tasks-db (none: it can).

    The task row is written by hand, in the run's last statement, because that saves a
    round trip and the ORM's save per run (measured: 0.4 ms of a 9 ms request, about 4 %);
    a release of the library that changes the row must not go unnoticed.
    """
    from django_tasks_db.models import DBTaskResult

    problems = []
    installed = metadata.version("django-tasks-db")
    if not installed.startswith(TASK_ROW_RELEASES):
        problems.append(
            f"django-tasks-db {installed} is installed; the outbox writes its task rows "
            f"itself and knows their shape in {TASK_ROW_RELEASES}x only."
        )
    columns = {field.attname for field in DBTaskResult._meta.concrete_fields}
    if columns != TASK_ROW_COLUMNS:
        problems.append(
            "django-tasks-db's task table has other columns than the outbox writes: "
            f"{', '.join(sorted(columns ^ TASK_ROW_COLUMNS))}."
        )
    return problems


def _task_row(ids: Sequence[str]) -> Any:
    """The row ``run_queued_step.enqueue(*ids)`` writes, to insert with the run's last
    statement: the same row as ``django_tasks_db``'s backend writes, with the
    ``run_after`` its ``pre_save`` handler would set (a multi-row insert sends no
    signals). The backend and the task are checked once per process (``_task_backend``);
    the library's release and its table's columns by the system check ``orchestration.E009``.
    """
    from django_tasks_db.compat import normalize_json
    from django_tasks_db.models import DBTaskResult

    backend, task, run_after = _task_backend()
    return DBTaskResult(
        id=backend._get_id(),
        args_kwargs=normalize_json({"args": list(ids), "kwargs": {}}),
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        run_after=run_after,
        backend_name=backend.alias,
    )


@cache
def _task_backend() -> tuple[Any, Any, Any]:
    """The database backend of ``run_queued_step``, the task, and its ``run_after``;
    found again after a change of ``TASKS`` (``_forget_task_backend``)."""
    from django_tasks_db import DatabaseBackend
    from django_tasks_db.models import get_date_max

    from orchestration._tasks_compat import task_backends
    from orchestration.tasks import run_queued_step as task

    backend = task_backends[task.backend]
    assert isinstance(backend, DatabaseBackend)  # _stores_tasks_in said so
    backend.validate_task(task)
    return backend, task, task.run_after if task.run_after is not None else get_date_max()


@receiver(setting_changed)
def _forget_task_backend(*, setting: str, **kwargs: Any) -> None:
    if setting == "TASKS":
        _task_backend.cache_clear()


def _announce(tasks: Sequence[Any]) -> None:
    """``task_enqueued`` for each task written, as the backend's ``enqueue`` sends it."""
    from orchestration._tasks_compat import task_backends, task_enqueued

    for row in tasks:
        backend = type(task_backends[row.backend_name])
        task_enqueued.send(backend, task_result=row.task_result)


def stores_tasks() -> bool:
    """Is ``run_queued_step``'s backend django-tasks-db's (a task is a row of a table)?"""
    from django_tasks_db import DatabaseBackend

    from orchestration._tasks_compat import task_backends
    from orchestration.tasks import run_queued_step

    return isinstance(task_backends[run_queued_step.backend], DatabaseBackend)


def _stores_tasks_in(using: str) -> bool:
    """Does the task backend write its tasks to database ``using`` (one transaction)?"""
    if not stores_tasks():
        return False
    from django_tasks_db.models import DBTaskResult

    return bool(router.db_for_write(DBTaskResult) == using)


def _dispatch(ids: Sequence[str], *, due: bool = False) -> None:
    """Hand committed rows to the task backend, a task each. A row whose task cannot
    be written waits for the relay; with ``due`` it is made due for the relay at once
    (rows stored with their task in the run's transaction are not due otherwise)."""
    from orchestration.tasks import run_queued_step

    for entry_id in ids:
        try:
            run_queued_step.enqueue(entry_id)
        except Exception:
            # The row is committed: the relay dispatches it again later.
            logger.warning("could not dispatch queued step %s", entry_id, exc_info=True)
            if due:
                QueuedStep.objects.filter(pk=entry_id, state=QueuedStep.State.QUEUED).update(
                    next_dispatch_at=timezone.now()
                )


def _dispatch_together(ids: Sequence[str]) -> None:
    """Hand a run's committed rows to the task backend as one task (``fan_out`` splits it)."""
    from orchestration.tasks import run_queued_step

    try:
        run_queued_step.enqueue(*ids)
    except Exception:
        # The rows are committed: the relay dispatches them again later.
        logger.warning("could not dispatch queued steps %s", ", ".join(ids), exc_info=True)


def fan_out(ids: Sequence[str]) -> None:
    """In the worker: the run's other steps, handed on as tasks of their own."""
    _dispatch(ids, due=True)


# -- in the worker --------------------------------------------------------------------


def _orchestrator(entry: QueuedStep) -> type[BaseOrchestrator[Any, Any, Any]]:
    found = registry.get(entry.orchestrator)
    if found is None:
        import_module(entry.module)
        found = registry.get(entry.orchestrator)
    if found is None:
        raise LookupError(f"No orchestrator named {entry.orchestrator!r} in this process.")
    return found


def _step(orchestrator: type[BaseOrchestrator[Any, Any, Any]], name: str) -> Step[Any]:
    for step in orchestrator.get_pipeline():
        if step.name == name and step.after_commit:
            return step
    raise LookupError(f"{orchestrator.metric_name} has no after-commit step {name!r}.")


def lease_of(step: Step[Any]) -> timedelta:
    budget = step.timeout if step.timeout is not None else setting("QUEUE_LEASE")
    return timedelta(seconds=budget + setting("QUEUE_LEASE_GRACE"))


def run_queued(entry_id: str) -> str:
    """Run one queued step if this delivery can claim it; returns the outcome.

    Outcomes: ``ok``, ``failed`` (for good), ``requeued`` (503-class failure,
    dispatched again later), ``duplicate`` (done, or running elsewhere under a
    live lease: nothing is run), ``missing`` (no such row).
    """
    from orchestration.engine import _Run, error_from_exception

    entry = QueuedStep.objects.filter(pk=entry_id).first()
    if entry is None:
        logger.warning("queued step %s does not exist", entry_id)
        return "missing"
    try:
        orchestrator = _orchestrator(entry)
        step = _step(orchestrator, entry.step)
    except (LookupError, ImportError) as exc:
        logger.error("queued step %s cannot run: %s", entry_id, exc)
        QueuedStep.objects.filter(pk=entry.pk).update(
            state=QueuedStep.State.FAILED, finished_at=timezone.now(), last_error=str(exc)
        )
        return "failed"
    counters = (
        queued_step_metrics(entry.orchestrator, entry.step) if get_config()["METRICS"] else None
    )
    now = timezone.now()
    claimed = (
        QueuedStep.objects.filter(pk=entry.pk)
        .filter(
            Q(state=QueuedStep.State.QUEUED)
            | Q(state=QueuedStep.State.RUNNING, lease_until__lt=now)
        )
        .update(
            state=QueuedStep.State.RUNNING,
            attempts=F("attempts") + 1,
            started_at=Coalesce(F("started_at"), Value(now)),
            lease_until=now + lease_of(step),
        )
    )
    if not claimed:
        if counters is not None:
            counters.runs["duplicate"].inc()
        return "duplicate"
    if entry.started_at is None and counters is not None:
        counters.wait.observe(max(0.0, (now - entry.enqueued_at).total_seconds()))
    attempt = entry.attempts + 1
    token = current_request_id.set(entry.request_id or new_request_id())
    error: StepError | None
    try:
        try:
            ctx = restore(entry.payload)
        except Exception as exc:
            error = error_from_exception(step.name, exc)
        else:
            ctx.metadata["dedupe_key"] = str(entry.pk)
            run = _Run(orchestrator(), ctx, (step,), orchestrator._step_metrics(), worker=True)
            # The condition was decided in the request, when the step was queued.
            unconditional = dataclasses.replace(step, when=None)
            error = run._run_step(unconditional, run._metrics_of(step)).error
    finally:
        current_request_id.reset(token)
    finished = timezone.now()
    changes: dict[str, Any]
    if error is None:
        outcome, changes = "ok", {"state": QueuedStep.State.DONE, "last_error": ""}
    elif error.status in (503, 504) and attempt < setting("QUEUE_MAX_ATTEMPTS"):
        delay = setting("QUEUE_RELAY_AFTER") * 2 ** (attempt - 1)
        outcome = "requeued"
        changes = {
            "state": QueuedStep.State.QUEUED,
            "next_dispatch_at": finished + timedelta(seconds=delay),
            "last_error": f"{error.code}: {error.message}",
        }
    else:
        outcome = "failed"
        changes = {"state": QueuedStep.State.FAILED, "last_error": f"{error.code}: {error.message}"}
    QueuedStep.objects.filter(pk=entry.pk).update(
        finished_at=finished if outcome != "requeued" else None, lease_until=None, **changes
    )
    if counters is not None:
        counters.runs[outcome].inc()
    return outcome


# -- the relay -----------------------------------------------------------------------


def relay(*, limit: int = 500) -> int:
    """Dispatch again the steps whose dispatch may be lost; returns how many.

    Those are steps still queued past their ``next_dispatch_at`` (a crash
    between commit and dispatch, a queue that lost the task, a retry that is
    due) and steps whose worker's lease expired (the worker died mid-step).
    """
    now = timezone.now()
    due = list(
        QueuedStep.objects.filter(
            Q(state=QueuedStep.State.QUEUED, next_dispatch_at__lte=now)
            | Q(state=QueuedStep.State.RUNNING, lease_until__lt=now)
        )
        .order_by("enqueued_at")
        .values_list("pk", "dispatches")[:limit]
    )
    relay_after = setting("QUEUE_RELAY_AFTER")
    for pk, dispatches in due:
        backoff = relay_after * 2 ** min(dispatches + 1, 7)
        QueuedStep.objects.filter(pk=pk).update(
            dispatches=F("dispatches") + 1, next_dispatch_at=now + timedelta(seconds=backoff)
        )
    _dispatch([str(pk) for pk, _ in due])
    return len(due)
