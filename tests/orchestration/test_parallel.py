"""Parallel groups in ``execute``: concurrency, merge, isolation, cancellation, compensation.

Concurrency is proven with rendezvous (a barrier both steps must reach while
the other is running), never with timings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.checks import run_checks
from prometheus_client import REGISTRY

from orchestration import (
    BaseOrchestrator,
    DefinitionError,
    OperationContext,
    Parallel,
    PaymentRequired,
    Retry,
    ServiceUnavailable,
    Step,
)
from orchestration.context import current_request_id

WAIT = 10  # seconds a rendezvous waits before it counts as "not concurrent"


@dataclass(kw_only=True, eq=False)
class QuoteContext(OperationContext):
    shipping: float | None = None
    tax: float | None = None
    total: float | None = None
    trail: list[str] = field(default_factory=list)
    seen_request_ids: list[str | None] = field(default_factory=list)


class QuoteBase(BaseOrchestrator[QuoteContext, dict[str, Any], None], abstract=True):
    def initialize_context(self, input: None, **kwargs: Any) -> QuoteContext:
        return QuoteContext(**kwargs)

    def build_result(self, ctx: QuoteContext) -> dict[str, Any]:
        return {
            "shipping": ctx.shipping,
            "tax": ctx.tax,
            "total": ctx.total,
            "seen_request_ids": ctx.seen_request_ids,
        }


def define(name: str, *pipeline: Step[Any], **attrs: Any) -> type[QuoteBase]:
    return type(name, (QuoteBase,), {"pipeline": pipeline, "__module__": __name__, **attrs})


def meet(barrier: threading.Barrier):
    """Operations that return only once every party of ``barrier`` is running."""

    def shipping(ctx: QuoteContext) -> QuoteContext:
        barrier.wait(WAIT)
        ctx.shipping = 4.5
        ctx.seen_request_ids.append(current_request_id.get())
        return ctx

    def tax(ctx: QuoteContext) -> QuoteContext:
        barrier.wait(WAIT)
        ctx.tax = 2.0
        return ctx

    return shipping, tax


def noop(ctx: QuoteContext) -> QuoteContext:
    return ctx


def add_up(ctx: QuoteContext) -> QuoteContext:
    ctx.total = (ctx.shipping or 0) + (ctx.tax or 0)
    return ctx


def quotes_group(barrier: threading.Barrier, **flags: Any) -> Parallel[QuoteContext]:
    shipping, tax = meet(barrier)
    return Parallel(
        "quotes",
        Step("shipping", shipping, outputs=("shipping", "seen_request_ids"), **flags),
        Step("tax", tax, outputs=("tax",)),
    )


# -- running and merging -------------------------------------------------------------


@pytest.mark.django_db
def test_steps_of_a_group_run_at_the_same_time_and_their_outputs_are_merged():
    orchestrator = define(
        "Quotes", quotes_group(threading.Barrier(2)), Step("add_up", add_up), atomic=False
    )

    result = orchestrator().execute(None, request_id="req-parallel")

    assert result.success, result.error
    assert result.data is not None
    assert (result.data["shipping"], result.data["tax"], result.data["total"]) == (4.5, 2.0, 6.5)
    assert [(r.name, r.kind, r.group, r.status) for r in result.steps] == [
        ("quotes", "group", None, "ok"),
        ("shipping", "step", "quotes", "ok"),
        ("tax", "step", "quotes", "ok"),
        ("add_up", "step", None, "ok"),
    ]
    assert set(result.metrics) == {"quotes", "shipping", "tax", "add_up"}
    assert result.step("quotes").duration_ms >= max(
        result.step("shipping").duration_ms, result.step("tax").duration_ms
    )


@pytest.mark.django_db
def test_a_branch_sees_the_request_id_of_the_run():
    orchestrator = define("QuotesRequestId", quotes_group(threading.Barrier(2)))

    result = orchestrator().execute(None, request_id="req-in-thread")

    assert result.success
    assert result.data is not None
    assert result.data["seen_request_ids"] == ["req-in-thread"]


@pytest.mark.django_db
def test_group_and_branch_metrics_are_recorded():
    orchestrator = define(
        "QuotesMetrics", quotes_group(threading.Barrier(2)), metric_name="quotes_metrics"
    )

    def sample(name: str, labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value(name, {"orchestrator": "quotes_metrics", **labels}) or 0

    group_runs = ("orchestrator_group_duration_seconds_count", {"group": "quotes", "outcome": "ok"})
    tax_runs = ("orchestrator_step_duration_seconds_count", {"step": "tax", "outcome": "ok"})
    groups_before, taxes_before = sample(*group_runs), sample(*tax_runs)

    assert orchestrator().execute(None).success

    assert sample(*group_runs) == groups_before + 1
    assert sample(*tax_runs) == taxes_before + 1


@pytest.mark.django_db
def test_a_best_effort_branch_failure_is_a_warning_and_the_other_outputs_still_merge():
    shipping, _ = meet(threading.Barrier(1))

    def tax_down(ctx: QuoteContext) -> QuoteContext:
        raise ServiceUnavailable("The tax service is down.")

    orchestrator = define(
        "QuotesBestEffort",
        Parallel(
            "quotes",
            Step("shipping", shipping, outputs=("shipping", "seen_request_ids")),
            Step("tax", tax_down, critical=False, outputs=("tax",)),
        ),
        Step("add_up", add_up),
    )

    result = orchestrator().execute(None)

    assert result.success
    assert result.data is not None
    assert (result.data["shipping"], result.data["tax"], result.data["total"]) == (4.5, None, 4.5)
    assert [warning.step for warning in result.warnings] == ["tax"]
    assert result.step("tax").status == "failed"
    assert result.step("quotes").status == "ok"


@pytest.mark.django_db
def test_a_false_condition_skips_the_whole_group():
    orchestrator = define(
        "QuotesSkipped",
        Parallel(
            "quotes",
            Step("shipping", add_up),
            Step("tax", add_up),
            when=lambda ctx: False,
        ),
        Step("add_up", add_up),
    )

    result = orchestrator().execute(None)

    assert result.success
    assert [(r.name, r.status) for r in result.steps] == [
        ("quotes", "skipped"),
        ("shipping", "skipped"),
        ("tax", "skipped"),
        ("add_up", "ok"),
    ]


@pytest.mark.django_db
def test_a_branch_that_outlives_its_budget_times_out():
    def slow(ctx: QuoteContext) -> QuoteContext:
        threading.Event().wait(0.05)
        return ctx

    orchestrator = define(
        "QuotesTimeout",
        Parallel(
            "quotes",
            Step("shipping", slow, timeout=0.01, critical=False),
            Step("tax", noop),
        ),
    )

    result = orchestrator().execute(None)

    assert result.success
    assert result.step("shipping").status == "timed_out"
    assert [warning.code for warning in result.warnings] == ["timeout"]


# -- rules checked at definition --------------------------------------------------------


def test_two_steps_of_a_group_may_not_write_the_same_field():
    with pytest.raises(DefinitionError, match="'shipping' and 'tax' both write 'total'"):
        Parallel(
            "quotes",
            Step("shipping", add_up, outputs=("total",)),
            Step("tax", add_up, outputs=("total",)),
        )


def test_an_output_must_be_a_field_of_the_context():
    with pytest.raises(DefinitionError, match="declares output 'price', which is not a field"):
        define(
            "QuotesBadOutput",
            Parallel("quotes", Step("shipping", add_up, outputs=("price",)), Step("tax", noop)),
        )


def test_names_are_unique_across_groups_and_steps():
    with pytest.raises(DefinitionError, match="'add_up' is used twice"):
        define(
            "QuotesDuplicate",
            Parallel("quotes", Step("add_up", add_up), Step("tax", noop)),
            Step("add_up", add_up),
        )


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        ((Step("only", add_up),), "at least two steps"),
        ((Step("a", add_up), Parallel("inner", Step("b", add_up), Step("c", add_up))), "nest"),
        ((Step("a", add_up), Step("b", add_up, critical=False, after_commit=True)), "after commit"),
        ((Step("a", add_up), Step("b", add_up, recover=lambda effect: None)), "journaled"),
    ],
)
def test_malformed_groups_are_rejected(branches, message):
    with pytest.raises(DefinitionError, match=message):
        Parallel("quotes", *branches)


# -- isolation ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_writing_a_field_not_declared_fails_the_step():
    def sneaky(ctx: QuoteContext) -> QuoteContext:
        ctx.tax = 99.0
        return ctx

    orchestrator = define(
        "QuotesUndeclared",
        Parallel("quotes", Step("shipping", sneaky, outputs=("shipping",)), Step("tax", noop)),
    )

    result = orchestrator().execute(None)

    assert not result.success
    assert result.error is not None
    assert (result.error.step, result.error.code) == ("shipping", "undeclared_output")
    assert "tax" in result.error.message


@pytest.mark.django_db
def test_results_written_in_a_branch_must_be_declared_too():
    def note(ctx: QuoteContext) -> QuoteContext:
        ctx.results["shipping"] = 4.5
        return ctx

    orchestrator = define(
        "QuotesResults", Parallel("quotes", Step("shipping", note), Step("tax", noop))
    )

    result = orchestrator().execute(None)

    assert result.error is not None
    assert (result.error.step, result.error.code) == ("shipping", "undeclared_output")


@pytest.mark.django_db(transaction=True)
def test_a_branch_may_not_query_the_database_and_the_run_rolls_back():
    def write_first(ctx: QuoteContext) -> QuoteContext:
        Group.objects.create(name="before-the-group")
        return ctx

    def query(ctx: QuoteContext) -> QuoteContext:
        ctx.shipping = float(Group.objects.count())
        return ctx

    orchestrator = define(
        "QuotesDatabase",
        Step("write_first", write_first),
        Parallel("quotes", Step("shipping", query, outputs=("shipping",)), Step("tax", noop)),
    )

    result = orchestrator().execute(None)

    assert not result.success
    assert result.error is not None
    assert (result.error.step, result.error.code) == ("shipping", "database_in_parallel_group")
    assert not Group.objects.filter(name="before-the-group").exists()


@pytest.mark.django_db
def test_best_effort_branches_have_no_savepoint_and_still_cannot_query():
    def query(ctx: QuoteContext) -> QuoteContext:
        list(Group.objects.all())
        return ctx

    orchestrator = define(
        "QuotesSavepoint",
        Parallel(
            "quotes",
            Step("shipping", query, critical=False, retry=Retry(attempts=2, backoff=0)),
            Step("tax", noop),
        ),
    )

    result = orchestrator().execute(None)

    assert result.success
    assert [warning.code for warning in result.warnings] == ["database_in_parallel_group"]


# -- failure, cancellation, compensation -------------------------------------------------


@pytest.mark.django_db
def test_a_critical_failure_cancels_the_group_and_compensates_what_completed(caplog):
    compensated: list[str] = []
    declined = threading.Event()
    courier_started, tax_tried = threading.Event(), threading.Event()

    def reserve(ctx: QuoteContext) -> QuoteContext:
        ctx.trail.append("reserve")
        return ctx

    def charge(ctx: QuoteContext) -> QuoteContext:
        # Declined once the courier is booking and the tax has failed once: otherwise, on a
        # busy machine, the group could be cancelled before their threads started.
        courier_started.wait(WAIT)
        tax_tried.wait(WAIT)
        raise PaymentRequired()

    def book_courier(ctx: QuoteContext) -> QuoteContext:
        # Runs until the group is cancelled (the engine tells it), then finishes its work.
        courier_started.set()
        for _ in range(WAIT * 100):
            if ctx.cancelled():
                declined.set()
                break
            threading.Event().wait(0.01)
        assert ctx.remaining() == 0.0
        ctx.shipping = 4.5
        return ctx

    def flaky_tax(ctx: QuoteContext) -> QuoteContext:
        tax_tried.set()
        raise ServiceUnavailable()

    orchestrator = define(
        "QuotesCancelled",
        Step("reserve", reserve, compensate=lambda ctx: compensated.append("reserve")),
        Parallel(
            "quotes",
            Step(
                "book_courier",
                book_courier,
                outputs=("shipping",),
                compensate=lambda ctx: compensated.append(f"courier {ctx.shipping}"),
            ),
            Step("charge", charge),
            # Would wait a minute before its retry; the cancellation ends the wait.
            Step("tax", flaky_tax, retry=Retry(attempts=3, backoff=60, max_backoff=60)),
        ),
        Step("add_up", add_up),
    )

    result = orchestrator().execute(None)

    assert declined.is_set()
    assert not result.success
    assert result.error is not None
    assert (result.error.step, result.error.code) == ("charge", "payment_declined")
    statuses = {record.name: record.status for record in result.steps}
    assert statuses["quotes"] == "failed"
    assert statuses["book_courier"] == "compensated"
    assert statuses["reserve"] == "compensated"
    assert "add_up" not in statuses
    assert result.step("tax").attempts == 1
    # Reverse order: the group's completed step first, with the output it produced.
    assert compensated == ["courier 4.5", "reserve"]


def test_fewer_than_one_worker_thread_is_a_system_check_error(settings: Any) -> None:
    settings.ORCHESTRATION = {"PARALLEL_WORKERS": 0}

    errors = [message.id for message in run_checks() if message.id.startswith("orchestration.E")]

    assert errors == ["orchestration.E004"]
