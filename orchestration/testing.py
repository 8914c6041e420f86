"""Helpers for testing one operation at a time.

``make_context`` builds a context with test defaults; ``run_step`` runs one
operation the way the engine would (savepoint rules, retry, timeout, error
translation, timing) so that a test mocks one thing, not the world::

    ctx = make_context(OrderContext, input=order_input, user=user)
    outcome = run_step(create_order, ctx)
    assert outcome.ok and outcome.ctx.order.owner == user

``isolated_registry`` keeps the orchestrators a test defines out of the
registry (and so out of ``manage.py orchestrators`` and the dashboards)::

    with isolated_registry():
        class Checkout(BaseOrchestrator[...]): ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS

from orchestration.context import OperationContext, StepError
from orchestration.engine import execute_step
from orchestration.registry import isolated as isolated_registry
from orchestration.result import StepRecord
from orchestration.steps import Step

__all__ = ["StepOutcome", "isolated_registry", "make_context", "run_step"]

CtxT = TypeVar("CtxT", bound=OperationContext)

TEST_REQUEST_ID = "test-request-id"


def make_context(context_class: type[CtxT], /, **fields: Any) -> CtxT:
    """A context with ``request_id`` set to a fixed test id and ``user`` None unless given."""
    fields.setdefault("request_id", TEST_REQUEST_ID)
    return context_class(**fields)


@dataclass(frozen=True)
class StepOutcome(Generic[CtxT]):
    ctx: CtxT
    record: StepRecord

    @property
    def ok(self) -> bool:
        return self.record.error is None and self.record.status == "ok"

    @property
    def error(self) -> StepError | None:
        return self.record.error


def run_step(
    step: Step[CtxT] | Any, ctx: CtxT, /, *, database: str = DEFAULT_DB_ALIAS, **options: Any
) -> StepOutcome[CtxT]:
    """Run one step (or a bare operation, wrapped in a Step with ``options``) on ``ctx``."""
    if not isinstance(step, Step):
        step = Step(options.pop("name", step.__name__), step, **options)
    elif options:
        raise TypeError("Pass options only with a bare operation, not with a Step.")
    after, record = execute_step(step, ctx, database=database)
    return StepOutcome(ctx=after, record=record)
