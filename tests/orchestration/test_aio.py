"""``aexecute`` and async operations: the event loop, transactions, real cancellation.

Async tests are driven with ``async_to_sync`` from sync tests, the way Django
serves an async view from its sync test client.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import Group

from orchestration import (
    BaseOrchestrator,
    OperationContext,
    Parallel,
    PaymentRequired,
    Retry,
    ServiceUnavailable,
    Step,
)

WAIT = 10


@dataclass(kw_only=True, eq=False)
class TripContext(OperationContext):
    flight: str | None = None
    hotel: str | None = None
    trail: list[str] = field(default_factory=list)
    threads: list[str] = field(default_factory=list)


class TripBase(BaseOrchestrator[TripContext, list[str], None], abstract=True):
    atomic = False

    def initialize_context(self, input: None, **kwargs: Any) -> TripContext:
        return TripContext(**kwargs)

    def build_result(self, ctx: TripContext) -> list[str]:
        return ctx.trail


def define(name: str, *pipeline: Step[Any], **attrs: Any) -> type[TripBase]:
    return type(name, (TripBase,), {"pipeline": pipeline, "__module__": __name__, **attrs})


def run(orchestrator: type[TripBase], **kwargs: Any):
    return async_to_sync(orchestrator().aexecute)(None, **kwargs)


def note(name: str):
    async def operation(ctx: TripContext) -> TripContext:
        await asyncio.sleep(0)
        ctx.trail.append(name)
        return ctx

    operation.__name__ = operation.__qualname__ = name
    return operation


def sync_note(name: str):
    def operation(ctx: TripContext) -> TripContext:
        ctx.trail.append(name)
        ctx.threads.append(threading.current_thread().name)
        return ctx

    operation.__name__ = operation.__qualname__ = name
    return operation


class Sleeper:
    """``sleep`` is an async operation that sleeps until cancelled; ``cancelled`` says if it was."""

    def __init__(self) -> None:
        self.cancelled = False

        async def sleep(ctx: TripContext) -> TripContext:
            try:
                await asyncio.sleep(WAIT * 6)
            except asyncio.CancelledError:
                self.cancelled = True
                raise
            return ctx

        self.sleep = sleep


# -- the loop and the steps -----------------------------------------------------------


@pytest.mark.django_db
def test_async_and_sync_steps_run_in_order_and_are_recorded():
    orchestrator = define(
        "Trip", Step("a", note("a")), Step("b", sync_note("b")), Step("c", note("c"))
    )

    result = run(orchestrator, request_id="req-async")

    assert result.success
    assert result.data == ["a", "b", "c"]
    assert result.request_id == "req-async"
    assert [(r.name, r.status, r.attempts) for r in result.steps] == [
        ("a", "ok", 1),
        ("b", "ok", 1),
        ("c", "ok", 1),
    ]
    assert all(isinstance(ms, float) for ms in result.metrics.values())


@pytest.mark.django_db
def test_an_async_step_past_its_budget_is_cancelled():
    sleeper = Sleeper()
    orchestrator = define(
        "TripTimeout", Step("slow", sleeper.sleep, timeout=0.05), Step("after", note("after"))
    )

    result = run(orchestrator)

    assert sleeper.cancelled
    assert not result.success
    assert result.error is not None
    assert (result.error.step, result.error.code) == ("slow", "timeout")
    assert result.step("slow").status == "timed_out"


@pytest.mark.django_db
def test_execute_also_runs_async_steps_and_their_timeout_cancels_them():
    sleeper = Sleeper()
    orchestrator = define(
        "TripSyncCaller",
        Step("a", note("a")),
        Step("slow", sleeper.sleep, timeout=0.05, critical=False),
    )

    result = orchestrator().execute(None)

    assert result.success
    assert result.data == ["a"]
    assert sleeper.cancelled
    assert [warning.code for warning in result.warnings] == ["timeout"]


@pytest.mark.django_db
def test_an_async_step_retries_with_its_policy():
    attempts: list[int] = []

    async def flaky(ctx: TripContext) -> TripContext:
        attempts.append(1)
        if len(attempts) < 3:
            raise ServiceUnavailable()
        ctx.trail.append("flaky")
        return ctx

    orchestrator = define("TripRetry", Step("flaky", flaky, retry=Retry(attempts=3, backoff=0)))

    result = run(orchestrator)

    assert result.success
    assert result.step("flaky").attempts == 3


@pytest.mark.django_db
def test_a_failure_compensates_completed_async_steps():
    undone: list[str] = []

    async def undo(ctx: TripContext) -> None:
        undone.append("a")

    async def decline(ctx: TripContext) -> TripContext:
        raise PaymentRequired()

    orchestrator = define(
        "TripCompensation", Step("a", note("a"), compensate=undo), Step("pay", decline)
    )

    result = run(orchestrator)

    assert result.error is not None
    assert result.error.code == "payment_declined"
    assert undone == ["a"]
    assert result.step("a").status == "compensated"


# -- transactions ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_atomic_run_keeps_one_transaction_across_async_steps():
    seen: list[bool] = []

    def write(ctx: TripContext) -> TripContext:
        Group.objects.create(name="in-the-run")
        return ctx

    async def read_back(ctx: TripContext) -> TripContext:
        # The async ORM comes back to the run's thread: it sees the uncommitted row.
        seen.append(await Group.objects.filter(name="in-the-run").aexists())
        return ctx

    async def decline(ctx: TripContext) -> TripContext:
        raise PaymentRequired()

    orchestrator = define(
        "TripAtomic",
        Step("write", write),
        Step("read_back", read_back),
        Step("pay", decline),
        atomic=True,
    )

    result = run(orchestrator)

    assert seen == [True]
    assert result.error is not None
    assert result.error.step == "pay"
    assert not Group.objects.filter(name="in-the-run").exists()


@pytest.mark.django_db(transaction=True)
def test_an_atomic_run_commits_when_every_step_succeeds():
    def write(ctx: TripContext) -> TripContext:
        Group.objects.create(name="committed")
        return ctx

    orchestrator = define("TripCommit", Step("write", write), Step("a", note("a")), atomic=True)

    assert run(orchestrator).success
    assert Group.objects.filter(name="committed").exists()


# -- groups on the loop -----------------------------------------------------------------


def rendezvous(mine: asyncio.Event, theirs: asyncio.Event, field_name: str, value: str):
    async def operation(ctx: TripContext) -> TripContext:
        mine.set()
        await asyncio.wait_for(theirs.wait(), WAIT)
        setattr(ctx, field_name, value)
        return ctx

    return operation


@pytest.mark.django_db
def test_async_steps_of_a_group_run_concurrently_on_the_loop():
    async def go() -> Any:
        flight, hotel = asyncio.Event(), asyncio.Event()
        orchestrator = define(
            "TripGroup",
            Parallel(
                "book",
                Step("flight", rendezvous(flight, hotel, "flight", "AF12"), outputs=("flight",)),
                Step("hotel", rendezvous(hotel, flight, "hotel", "Ritz"), outputs=("hotel",)),
                Step("notes", sync_note("notes"), outputs=("trail", "threads")),
            ),
        )
        return await orchestrator().aexecute(None)

    result = async_to_sync(go)()

    assert result.success, result.error
    assert result.data == ["notes"]
    assert [(r.name, r.group, r.status) for r in result.steps] == [
        ("book", None, "ok"),
        ("flight", "book", "ok"),
        ("hotel", "book", "ok"),
        ("notes", "book", "ok"),
    ]


@pytest.mark.django_db
def test_a_critical_failure_in_an_async_group_cancels_the_other_steps():
    sleeper = Sleeper()

    async def decline(ctx: TripContext) -> TripContext:
        await asyncio.sleep(0)
        raise PaymentRequired()

    orchestrator = define(
        "TripGroupCancel",
        Parallel("book", Step("slow", sleeper.sleep), Step("pay", decline)),
        Step("after", note("after")),
    )

    result = run(orchestrator)

    assert sleeper.cancelled
    assert result.error is not None
    assert (result.error.step, result.error.code) == ("pay", "payment_declined")
    assert result.step("slow").status == "cancelled"
    assert "slow" not in result.metrics


@pytest.mark.django_db
def test_an_async_step_of_a_group_may_not_use_the_orm():
    async def count(ctx: TripContext) -> TripContext:
        ctx.flight = str(await Group.objects.acount())
        return ctx

    orchestrator = define(
        "TripGroupOrm",
        Parallel("book", Step("flight", count, outputs=("flight",)), Step("hotel", note("h"))),
    )

    result = run(orchestrator)

    assert result.error is not None
    assert (result.error.step, result.error.code) == ("flight", "database_in_parallel_group")
