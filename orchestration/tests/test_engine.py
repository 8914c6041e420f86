"""The engine contract, against the real test database."""

from __future__ import annotations

import logging
import time

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from orchestration import (
    BaseOrchestrator,
    Conflict,
    DefinitionError,
    NotFound,
    PaymentRequired,
    Retry,
    ServiceUnavailable,
    Step,
    ValidationFailed,
    registry,
)
from orchestration.engine import default_metric_name
from orchestration.testing import run_queued_steps
from orchestration.tests.pipelines import (
    GroupsContext,
    GroupsOrchestrator,
    create_group,
    fail_with,
    groups,
    make_orchestrator,
)


def count_savepoints(queries: CaptureQueriesContext) -> int:
    return sum(1 for query in queries.captured_queries if query["sql"].startswith("SAVEPOINT"))


# -- order, data, timing --------------------------------------------------------------


@pytest.mark.django_db
def test_steps_run_in_declared_order_and_the_result_is_built_from_the_context():
    orchestrator = make_orchestrator(
        "InOrder", [Step("first", create_group("a")), Step("second", create_group("b"))]
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.data == ["a", "b"]
    assert [record.name for record in result.steps] == ["first", "second"]
    assert all(record.status == "ok" and record.attempts == 1 for record in result.steps)
    assert result.error is None
    assert groups() == ["a", "b"]


@pytest.mark.django_db
def test_timings_are_float_milliseconds_for_every_step_that_ran():
    def sleepy(ctx: GroupsContext) -> GroupsContext:
        time.sleep(0.002)
        return ctx

    orchestrator = make_orchestrator(
        "Timed",
        [
            Step("sleepy", sleepy),
            Step("skipped", sleepy, when=lambda ctx: False),
            Step("broken", fail_with(ValueError("x")), critical=False),
        ],
    )

    result = orchestrator().execute([])

    assert set(result.metrics) == {"sleepy", "broken"}
    assert all(isinstance(ms, float) for ms in result.metrics.values())
    assert result.metrics["sleepy"] >= 2.0
    assert result.duration_ms >= result.metrics["sleepy"]
    assert result.step("skipped").duration_ms == 0.0


@pytest.mark.django_db
def test_the_request_id_is_passed_through_or_generated():
    orchestrator = make_orchestrator("Ids", [Step("noop", lambda ctx: ctx)])

    given = orchestrator().execute([], request_id="req-12345678")
    generated = orchestrator().execute([])

    assert given.request_id == "req-12345678"
    assert len(generated.request_id) == 32


# -- critical failures and transactions -------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_critical_failure_rolls_back_every_write_of_the_run():
    orchestrator = make_orchestrator(
        "RollsBack",
        [
            Step("first", create_group("a")),
            Step("noted", create_group("b"), critical=False),
            Step("charge", fail_with(PaymentRequired("card declined"), after_writing="c")),
            Step("never", create_group("d")),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert result.data is None
    assert result.error.step == "charge"
    assert result.error.code == "payment_declined"
    assert result.error.status == 402
    assert result.error.message == "card declined"
    assert [record.name for record in result.steps] == ["first", "noted", "charge"]
    assert result.step("charge").status == "failed"
    assert groups() == []


@pytest.mark.django_db(transaction=True)
def test_atomic_false_keeps_the_writes_of_completed_steps():
    orchestrator = make_orchestrator(
        "NotAtomic",
        [Step("first", create_group("a")), Step("fails", fail_with(Conflict()))],
        atomic=False,
    )

    result = orchestrator().execute([])

    assert not result.success
    assert groups() == ["a"]


@pytest.mark.django_db(transaction=True)
def test_a_failed_best_effort_step_undoes_only_its_own_writes():
    orchestrator = make_orchestrator(
        "BestEffort",
        [
            Step("first", create_group("a")),
            Step(
                "analytics",
                fail_with(ServiceUnavailable("down"), after_writing="b"),
                critical=False,
            ),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert groups() == ["a", "c"]
    assert [(w.step, w.code) for w in result.warnings] == [("analytics", "service_unavailable")]
    assert result.step("analytics").status == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_database_error_in_a_best_effort_step_leaves_the_transaction_usable():
    # On PostgreSQL a failed statement aborts the whole transaction unless it
    # ran inside a savepoint; the engine gives best-effort steps one.
    orchestrator = make_orchestrator(
        "DuplicateRow",
        [
            Step("first", create_group("a")),
            Step("duplicate", create_group("a"), critical=False),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert groups() == ["a", "c"]
    assert result.warnings[0].code == "internal_error"


@pytest.mark.django_db(transaction=True)
def test_critical_steps_without_retry_pay_for_no_savepoint():
    critical_only = make_orchestrator(
        "NoSavepoints", [Step(f"s{i}", create_group(f"g{i}")) for i in range(3)]
    )
    with_best_effort = make_orchestrator(
        "OneSavepoint",
        [Step("a", create_group("x")), Step("b", create_group("y"), critical=False)],
    )

    with CaptureQueriesContext(connection) as plain:
        critical_only().execute([])
    with CaptureQueriesContext(connection) as mixed:
        with_best_effort().execute([])

    assert count_savepoints(plain) == 0
    assert count_savepoints(mixed) == 1


@pytest.mark.django_db(transaction=True)
def test_an_orchestrator_inside_an_outer_transaction_is_rolled_back_to_its_savepoint():
    orchestrator = make_orchestrator(
        "Nested", [Step("first", create_group("inner")), Step("fails", fail_with(NotFound()))]
    )

    with transaction.atomic():
        Group.objects.create(name="outer")
        result = orchestrator().execute([])

    assert result.error.status == 404
    assert groups() == ["outer"]


# -- error translation ------------------------------------------------------------------


@pytest.mark.django_db
def test_an_unexpected_exception_is_an_internal_error_without_internals(caplog):
    orchestrator = make_orchestrator(
        "Crashes", [Step("crash", fail_with(KeyError("secret_column")))]
    )

    with caplog.at_level(logging.ERROR, logger="orchestration"):
        result = orchestrator().execute([], request_id="req-crash-0001")

    assert result.error.code == "internal_error"
    assert result.error.status == 500
    assert "secret_column" not in result.error.message
    assert "req-crash-0001" in result.error.message
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.request_id == "req-crash-0001"
    assert record.exc_info[0] is KeyError


@pytest.mark.django_db
def test_django_errors_map_to_their_typed_twins():
    from django.core.exceptions import ValidationError

    def missing(ctx):
        return Group.objects.get(name="nope")

    def invalid(ctx):
        raise ValidationError({"quantity": ["Must be positive."]})

    not_found = make_orchestrator("Missing", [Step("load", missing)])().execute([])
    bad = make_orchestrator("Invalid", [Step("check", invalid)])().execute([])

    assert (not_found.error.code, not_found.error.status) == ("not_found", 404)
    assert (bad.error.code, bad.error.status) == ("validation_failed", 400)
    assert bad.error.details == {"quantity": ["Must be positive."]}


@pytest.mark.django_db
def test_typed_errors_keep_code_message_and_details():
    error = ValidationFailed("Bad items.", details={"items": ["Empty."]})
    result = make_orchestrator("Typed", [Step("validate", fail_with(error))])().execute([])

    assert result.error.as_dict() == {
        "step": "validate",
        "code": "validation_failed",
        "message": "Bad items.",
        "details": {"items": ["Empty."]},
    }


@pytest.mark.django_db
def test_an_operation_returning_something_else_fails_its_step_naming_it():
    orchestrator = make_orchestrator(
        "BadReturn", [Step("forgets_return", lambda ctx: None), Step("after", create_group("a"))]
    )

    result = orchestrator().execute([])

    assert not result.success
    assert result.error.step == "forgets_return"
    assert result.error.code == "invalid_return"
    assert "'forgets_return'" in result.error.message
    assert "NoneType" in result.error.message
    assert groups() == []


@pytest.mark.django_db
def test_an_operation_may_return_a_replaced_copy_of_the_context():
    import dataclasses

    def rename(ctx: GroupsContext) -> GroupsContext:
        return dataclasses.replace(ctx, trail=[*ctx.trail, "copied"])

    result = make_orchestrator("Copies", [Step("rename", rename)])().execute([])

    assert result.data == ["copied"]


def test_execute_raises_for_programming_errors():
    class ReturnsNoContext(GroupsOrchestrator):
        pipeline = [Step("noop", lambda ctx: ctx)]

        def initialize_context(self, input, **kwargs):
            return {"not": "a context"}

    with pytest.raises(TypeError, match="initialize_context"):
        ReturnsNoContext().execute([])


# -- compensation -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_compensations_run_in_reverse_order_for_completed_steps_and_survive_failures():
    undone: list[str] = []

    def undo(name: str):
        return lambda ctx: undone.append(name)

    def broken_undo(ctx):
        undone.append("broken")
        raise RuntimeError("refund API down")

    orchestrator = make_orchestrator(
        "Compensates",
        [
            Step("reserve", create_group("a"), compensate=undo("reserve")),
            Step("plain", create_group("b")),
            Step("charge", create_group("c"), compensate=broken_undo),
            Step("notify", create_group("d"), critical=False, compensate=undo("notify")),
            Step("ship", fail_with(ServiceUnavailable())),
            Step("never", create_group("e"), compensate=undo("never")),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert undone == ["notify", "broken", "reserve"]
    assert result.step("reserve").status == "compensated"
    assert result.step("notify").status == "compensated"
    assert result.step("plain").status == "ok"
    charge = result.step("charge")
    assert (charge.status, charge.compensation) == ("ok", "failed")
    assert charge.compensation_error == "RuntimeError: refund API down"
    assert groups() == []


@pytest.mark.django_db
def test_nothing_is_compensated_on_success():
    undone: list[str] = []
    orchestrator = make_orchestrator(
        "NoCompensation", [Step("a", create_group("a"), compensate=lambda ctx: undone.append("a"))]
    )

    assert orchestrator().execute([]).success
    assert undone == []


# -- retry ------------------------------------------------------------------------------


class Flaky:
    """Fails with ``exc`` the first ``failures`` calls, writing a row each time."""

    def __init__(self, failures: int, exc: Exception) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0
        self.__name__ = self.__qualname__ = "flaky"

    def __call__(self, ctx: GroupsContext) -> GroupsContext:
        self.calls += 1
        Group.objects.create(name=f"attempt-{self.calls}")
        if self.calls <= self.failures:
            raise self.exc
        return ctx


@pytest.mark.django_db(transaction=True)
def test_retry_reruns_listed_exceptions_and_undoes_each_failed_attempt():
    flaky = Flaky(2, ServiceUnavailable("gateway timeout"))
    orchestrator = make_orchestrator(
        "Retries", [Step("charge", flaky, retry=Retry(attempts=3, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.success
    assert flaky.calls == 3
    assert result.step("charge").attempts == 3
    assert groups() == ["attempt-3"]


@pytest.mark.django_db(transaction=True)
def test_retry_gives_up_after_its_attempts():
    flaky = Flaky(5, ServiceUnavailable())
    orchestrator = make_orchestrator(
        "GivesUp", [Step("charge", flaky, retry=Retry(attempts=2, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.error.code == "service_unavailable"
    assert result.step("charge").attempts == 2
    assert flaky.calls == 2
    assert groups() == []


@pytest.mark.django_db
def test_retry_does_not_rerun_exceptions_it_does_not_list():
    flaky = Flaky(1, PaymentRequired())
    orchestrator = make_orchestrator(
        "NoRetryOnDecline", [Step("charge", flaky, retry=Retry(attempts=5, backoff=0))]
    )

    result = orchestrator().execute([])

    assert result.error.code == "payment_declined"
    assert flaky.calls == 1
    assert result.step("charge").attempts == 1


def test_retry_backoff_grows_exponentially_up_to_its_cap_with_jitter():
    policy = Retry(attempts=10, backoff=0.1, max_backoff=0.5)

    delays = [policy.delay(n) for n in range(1, 6)]

    assert 0.05 <= delays[0] <= 0.1
    assert 0.1 <= delays[1] <= 0.2
    assert 0.2 <= delays[2] <= 0.4
    assert all(0.25 <= d <= 0.5 for d in delays[3:])


# -- when -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_false_condition_skips_the_step():
    orchestrator = make_orchestrator(
        "Conditional",
        [
            Step("wanted", create_group("a"), when=lambda ctx: "a" in ctx.names),
            Step("unwanted", create_group("b"), when=lambda ctx: "b" in ctx.names),
        ],
    )

    result = orchestrator().execute(["a"])

    assert result.success
    assert result.step("wanted").status == "ok"
    assert result.step("unwanted").status == "skipped"
    assert result.step("unwanted").attempts == 0
    assert "unwanted" not in result.metrics
    assert groups() == ["a"]


# -- after commit -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_after_commit_steps_never_run_when_the_run_fails():
    calls: list[str] = []
    orchestrator = make_orchestrator(
        "NoNotifyOnFailure",
        [
            Step("notify", lambda ctx: calls.append("x") or ctx, critical=False, after_commit=True),
            Step("fails", fail_with(Conflict())),
        ],
    )

    result = orchestrator().execute([])

    assert not result.success
    assert "notify" not in [record.name for record in result.steps]
    assert run_queued_steps() == {}
    assert calls == []


# -- timeout ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_step_that_returns_past_its_budget_times_out_and_its_writes_are_undone():
    budgets: list[float | None] = []

    def slow(ctx: GroupsContext) -> GroupsContext:
        budgets.append(ctx.remaining())
        Group.objects.create(name="slow")
        time.sleep(0.06)
        budgets.append(ctx.remaining())
        return ctx

    orchestrator = make_orchestrator(
        "Slow",
        [
            Step("first", create_group("a")),
            Step("slow", slow, critical=False, timeout=0.05),
            Step("last", create_group("c")),
        ],
    )

    result = orchestrator().execute([])

    assert result.success
    assert result.step("slow").status == "timed_out"
    assert result.warnings[0].code == "timeout"
    assert 0 < budgets[0] <= 0.05
    assert budgets[1] == 0.0
    assert groups() == ["a", "c"]


@pytest.mark.django_db
def test_remaining_is_none_without_a_timeout_and_a_critical_timeout_fails_the_run():
    budgets: list[float | None] = []

    def record(ctx):
        budgets.append(ctx.remaining())
        return ctx

    def slow(ctx):
        time.sleep(0.03)
        return ctx

    orchestrator = make_orchestrator(
        "CriticalSlow", [Step("record", record), Step("slow", slow, timeout=0.01)]
    )

    result = orchestrator().execute([])

    assert budgets == [None]
    assert (result.error.step, result.error.code) == ("slow", "timeout")


# -- definition errors ------------------------------------------------------------------


def test_duplicate_step_names_are_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"Twice.*'charge' is used twice"):

        class Twice(GroupsOrchestrator):
            pipeline = [Step("charge", create_group("a")), Step("charge", create_group("b"))]


def test_a_critical_after_commit_step_is_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"CriticalEmail.*'email'.*cannot be critical"):

        class CriticalEmail(GroupsOrchestrator):
            pipeline = [Step("email", create_group("a"), after_commit=True)]


def test_an_empty_pipeline_is_rejected_when_the_class_is_defined():
    with pytest.raises(DefinitionError, match=r"Empty: the pipeline has no steps"):

        class Empty(GroupsOrchestrator):
            pipeline = []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Bad Name"}, "lower_snake_case"),
        ({"name": "ok", "timeout": 0}, "timeout must be a positive number"),
        ({"name": "ok", "retry": 3}, "retry must be a Retry instance"),
        ({"name": "ok", "when": True}, "when must be callable"),
    ],
)
def test_malformed_steps_are_rejected(kwargs, message):
    with pytest.raises(DefinitionError, match=message):
        Step(operation=create_group("a"), **kwargs)


def test_retry_policies_are_checked():
    with pytest.raises(DefinitionError, match="at least 1"):
        Retry(attempts=0)
    with pytest.raises(DefinitionError, match="exception classes"):
        Retry(on=("ServiceUnavailable",))


def test_a_computed_pipeline_is_validated_and_used():
    class Computed(GroupsOrchestrator):
        @classmethod
        def get_pipeline(cls):
            return [Step("one", create_group("one"))]

    assert [step["name"] for step in registry.describe(Computed)["steps"]] == ["one"]


# -- naming and registry ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("class_name", "metric_name"),
    [
        ("CreateOrderOrchestrator", "create_order"),
        ("CancelOrder", "cancel_order"),
        ("HTTPSyncOrchestrator", "http_sync"),
        ("Orchestrator", "orchestrator"),
    ],
)
def test_the_metric_name_defaults_to_the_class_name_in_snake_case(class_name, metric_name):
    assert default_metric_name(class_name) == metric_name


def test_every_concrete_orchestrator_is_registered_with_its_steps():
    class RegisteredPipeline(GroupsOrchestrator):
        metric_name = "registered_for_test"
        pipeline = [
            Step("a", create_group("a"), retry=Retry(attempts=2)),
            Step("b", create_group("b"), critical=False, after_commit=True, timeout=1.5),
        ]

    described = registry.describe(RegisteredPipeline)

    assert RegisteredPipeline in registry.registered(include_tests=True)
    assert RegisteredPipeline not in registry.registered()
    assert described["name"] == "registered_for_test"
    assert [(s["name"], s["critical"], s["after_commit"]) for s in described["steps"]] == [
        ("a", True, False),
        ("b", False, True),
    ]
    assert described["steps"][0]["retry"] == {"attempts": 2, "on": ["ServiceUnavailable"]}
    assert described["steps"][1]["timeout"] == 1.5
    assert GroupsOrchestrator not in registry.registered(include_tests=True)


def test_two_classes_cannot_share_a_metric_name():
    class Original(GroupsOrchestrator):
        metric_name = "shared_metric_name"
        pipeline = [Step("a", create_group("a"))]

    with pytest.raises(DefinitionError, match="already used by"):
        type(
            "Impostor",
            (BaseOrchestrator,),
            {
                "metric_name": "shared_metric_name",
                "pipeline": [Step("a", create_group("a"))],
                "__module__": "somewhere.else",
            },
        )
