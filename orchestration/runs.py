"""What the engine does once a run is over: trace it, and keep a record of it.

``run_finished`` is the engine's one call at the end of a run. It gives the
run its OpenTelemetry spans (when tracing is on, see ``tracing``) and decides
whether to keep a ``RunRecord``: failures always, successes with probability
``RUN_RECORD_SAMPLE_RATE``.

The record is written off the request's critical path: inside a request
served through ``TimingMiddleware`` it waits until the response has been sent
(the server closes the response, see ``deferred_records``), so no client waits
for it; a process killed in between loses it. Elsewhere (a command, a task) it
is written when the run ends.

Either way it is written outside the run's transaction, so that a failure
whose writes were rolled back still leaves one:

- when the run owned its transaction (the usual case: a view that is not in
  ``ATOMIC_REQUESTS``), that transaction has ended by now and the record is
  one INSERT in autocommit;
- inside a caller's transaction on PostgreSQL, the INSERT goes through a
  connection of its own that commits at once;
- inside a caller's transaction on SQLite a second connection would wait for
  the write lock the caller holds, so the record is written when that
  transaction commits, and is lost if it rolls back.

Settings (``orchestration.conf``): ``RUN_RECORDS`` (default True),
``RUN_RECORD_SAMPLE_RATE`` (default 0.01), ``RUN_RECORD_RETENTION_DAYS``
(default 30, what ``purge_run_records`` keeps), ``TRACING`` (default True).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from contextvars import ContextVar
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, connections, transaction
from django.db.models import Model
from django.db.models.sql import InsertQuery
from django.utils import timezone

from orchestration import tracing
from orchestration.conf import get_config

if TYPE_CHECKING:
    from orchestration.context import OperationContext
    from orchestration.engine import BaseOrchestrator
    from orchestration.models import RunRecord
    from orchestration.result import OrchestratorResult
    from orchestration.steps import Step

logger = logging.getLogger("orchestration")

#: Status of a pipeline step the run never reached.
NOT_RUN = "not_run"

#: Set by TimingMiddleware for the request being served: records to write once its
#: response has been sent (``write_deferred``), with the database of each.
deferred_records: ContextVar[list[tuple[RunRecord, str]] | None] = ContextVar(
    "deferred_records", default=None
)


def run_finished(
    orchestrator: BaseOrchestrator[Any, Any, Any],
    ctx: OperationContext,
    steps: Sequence[Step[Any]],
    result: OrchestratorResult[Any],
) -> None:
    """Trace the run, then record it if it is a failure or sampled. Never raises
    for a tracing or database problem: the run's answer matters more."""
    config = get_config()
    if config["TRACING"] and tracing.enabled():
        try:
            metrics = type(orchestrator)._step_metrics()
            result.trace_id = tracing.trace_run(result, steps, metrics)
        except Exception:
            logger.exception("could not trace this run")
    if not config["RUN_RECORDS"]:
        return
    rate = 1.0
    if result.success:
        rate = config["RUN_RECORD_SAMPLE_RATE"]
        if rate <= 0 or random.random() >= rate:
            return
    try:
        record = build_record(orchestrator, ctx, steps, result, sample_rate=rate)
    except Exception:
        logger.exception("could not build the record of this run")
        return
    pending = deferred_records.get()
    if pending is not None:
        pending.append((record, orchestrator.database))
    else:
        write_record(record, using=orchestrator.database)


def write_deferred(pending: list[tuple[RunRecord, str]]) -> None:
    """Write the records a request deferred (its response is closed: sent)."""
    while pending:
        record, using = pending.pop(0)
        write_record(record, using=using)


def build_record(
    orchestrator: BaseOrchestrator[Any, Any, Any],
    ctx: OperationContext,
    steps: Sequence[Step[Any]],
    result: OrchestratorResult[Any],
    *,
    sample_rate: float,
) -> RunRecord:
    from orchestration.models import RunRecord

    records = {record.name: record for record in result.steps}
    step_rows: list[dict[str, Any]] = []
    compensations: list[dict[str, Any]] = []
    for step in steps:
        record = records.get(step.name)
        if record is None:
            step_rows.append(
                {
                    "name": step.name,
                    "status": NOT_RUN,
                    "critical": step.critical,
                    "attempts": 0,
                    "duration_ms": 0.0,
                    "error_code": None,
                    "compensation": None,
                }
            )
            continue
        compensation = "ok" if record.status == "compensated" else record.compensation
        step_rows.append(
            {
                "name": record.name,
                "status": record.status,
                "critical": record.critical,
                "attempts": record.attempts,
                "duration_ms": record.duration_ms,
                "error_code": None if record.error is None else record.error.code,
                "compensation": compensation,
            }
        )
        if compensation is not None:
            compensations.append(
                {"step": record.name, "outcome": compensation, "error": record.compensation_error}
            )
    error = result.error
    subject = orchestrator.run_subject(ctx, result)
    user = getattr(ctx, "user", None)
    return RunRecord(
        created=timezone.now(),
        orchestrator=result.orchestrator,
        request_id=result.request_id,
        user_id=getattr(user, "pk", None),
        outcome=RunRecord.Outcome.SUCCESS if result.success else RunRecord.Outcome.FAILURE,
        failing_step=error.step if error else "",
        error_code=error.code if error else "",
        error_message=error.message if error else "",
        duration_ms=result.duration_ms,
        steps=step_rows,
        compensations=compensations,
        warnings=[warning.as_dict() for warning in result.warnings],
        sample_rate=sample_rate,
        trace_id=result.trace_id or "",
        subject_type=subject._meta.label_lower if isinstance(subject, Model) else "",
        subject_id=str(subject.pk) if isinstance(subject, Model) else "",
    )


def write_record(record: RunRecord, *, using: str) -> None:
    """One INSERT outside the run's transaction (see the module's docstring)."""
    connection = connections[using]
    try:
        if not connection.in_atomic_block:
            _insert(record, connection)
        elif connection.vendor == "postgresql":
            _insert_on_own_connection(record, connection)
        else:
            transaction.on_commit(partial(_insert_logged, record, using), using=using)
    except DatabaseError as exc:
        logger.warning("could not write the record of run %s: %s", record.request_id, exc)


#: Sent with a record's INSERT on PostgreSQL, in the same round trip: the commit does
#: not wait for the disk (see ``_insert``).
ASYNCHRONOUS_COMMIT = "SET LOCAL synchronous_commit TO off; "


def _insert(record: RunRecord, connection: Any) -> None:
    """The record's INSERT, in autocommit or in the caller's transaction.

    On PostgreSQL in autocommit it goes with ``SET LOCAL synchronous_commit TO
    off``, in one round trip (statements sent together run as one transaction),
    so its commit does not wait for the disk: a sampled record would otherwise
    hold its worker for an fsync (several ms) before the next request, which
    shows in the tail latency. A crash of the database server itself within a
    fraction of a second of the INSERT could lose the record: a record is what
    was seen, never what decides (unlike the journal's intents, which wait).
    """
    meta = type(record)._meta
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    query = InsertQuery(type(record))
    query.insert_values(fields, [record])
    compiler = query.get_compiler(connection=connection)
    if not _commits_asynchronously(connection):
        compiler.execute_sql()
        return
    [(sql, params)] = compiler.as_sql()
    with connection.cursor() as cursor:
        cursor.execute(ASYNCHRONOUS_COMMIT + sql, params)


def _commits_asynchronously(connection: Any) -> bool:
    """PostgreSQL in autocommit, with client-side binding (Django's default: several
    statements in one ``execute``)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    return connection.settings_dict["OPTIONS"].get("server_side_binding") is not True


def _insert_logged(record: RunRecord, using: str) -> None:
    try:
        _insert(record, connections[using])
    except DatabaseError as exc:
        logger.warning("could not write the record of run %s: %s", record.request_id, exc)


def _insert_on_own_connection(record: RunRecord, connection: Any) -> None:
    """Commit the record at once, whatever the caller's transaction does later."""
    own = type(connection)(connection.settings_dict, connection.alias)
    try:
        _insert(record, own)
    finally:
        own.close()


def purge_run_records(*, older_than: timedelta | None = None, dry_run: bool = False) -> int:
    """Delete the records older than ``older_than`` (default: the retention setting);
    how many (would) go. A periodic task calls this as it is."""
    from orchestration.models import RunRecord

    if older_than is None:
        older_than = timedelta(days=get_config()["RUN_RECORD_RETENTION_DAYS"])
    stale = RunRecord.objects.filter(created__lt=timezone.now() - older_than)
    if dry_run:
        return stale.count()
    deleted, _ = stale.delete()
    return deleted
