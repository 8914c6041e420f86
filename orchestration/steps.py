"""Pipeline steps, parallel groups, retry policies and the rules a pipeline's declaration
must follow."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from asgiref.sync import iscoroutinefunction

from orchestration.errors import DefinitionError, ServiceUnavailable

if TYPE_CHECKING:
    from orchestration.journal import Effect

CtxT = TypeVar("CtxT")

#: Step names, metric names and error codes: each becomes a Prometheus label value.
NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

#: The step name used when the transaction itself (begin or commit) fails.
TRANSACTION_STEP = "transaction"


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry a step on the listed exception types, with exponential backoff and jitter.

    ``attempts`` counts the first try: ``Retry(attempts=3)`` runs a step at most
    three times. The wait before retry *n* is ``min(max_backoff, backoff * 2**(n-1))``
    scaled by a random factor in [0.5, 1] so that clients do not retry in step.
    """

    attempts: int = 3
    backoff: float = 0.05
    max_backoff: float = 2.0
    on: tuple[type[BaseException], ...] = (ServiceUnavailable,)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise DefinitionError(f"Retry.attempts must be at least 1, got {self.attempts}.")
        if self.backoff < 0 or self.max_backoff < 0:
            raise DefinitionError("Retry.backoff and Retry.max_backoff must not be negative.")
        if not self.on or not all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in self.on
        ):
            raise DefinitionError("Retry.on must be a non-empty tuple of exception classes.")

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry number ``retry_number`` (1 for the first retry)."""
        cap = min(self.max_backoff, self.backoff * 2 ** (retry_number - 1))
        return cap * random.uniform(0.5, 1.0)


def _callable_name(function: Callable[..., Any]) -> str:
    return getattr(function, "__name__", None) or type(function).__name__


@dataclass(frozen=True, slots=True)
class Step(Generic[CtxT]):
    """One stage of a pipeline.

    ``critical`` defaults to True on purpose: a step is best effort only when
    its author says so. ``operation`` may be an ``async def`` function (see
    ``BaseOrchestrator.aexecute``). ``outputs`` names the context fields the
    operation sets: a step inside a ``Parallel`` group works on a copy of the
    context, and only these fields are merged back. ``recover`` makes the step
    *journaled*: its intent is recorded before it runs, its operation sends
    ``ctx.effect_key()`` to the external system, and ``recover(effect)`` undoes
    the effect knowing only that key, in a process that never saw the run (see
    ``orchestration.journal``).
    In the run's own process ``compensate(ctx)`` is preferred when given.
    An ``after_commit`` step runs later in a task worker,
    on a context rebuilt from the fields it names in ``uses`` (plus
    ``request_id``, ``user`` and ``metadata``); see ``orchestration.payload``.
    """

    name: str
    operation: Callable[[CtxT], CtxT]
    critical: bool = True
    when: Callable[[CtxT], bool] | None = None
    retry: Retry | None = None
    compensate: Callable[[CtxT], Any] | None = None
    after_commit: bool = False
    timeout: float | None = None
    outputs: tuple[str, ...] = ()
    #: The operation is a coroutine function: awaited with a real (cancelling) timeout.
    is_async: bool = field(init=False, default=False, repr=False, compare=False)
    recover: Callable[[Effect], Any] | None = None
    uses: tuple[str, ...] = ()
    #: A critical step with no condition, retry, timeout or deferral: the engine's
    #: fast path (no savepoint, no policy), decided once here rather than per run.
    plain: bool = field(init=False, default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise DefinitionError(
                f"Step name {self.name!r} must be lower_snake_case (letters, digits, "
                "underscores; at most 63 characters): it becomes a metric label."
            )
        if not callable(self.operation):
            raise DefinitionError(f"Step {self.name!r}: operation must be callable.")
        for attr in ("when", "compensate", "recover"):
            value = getattr(self, attr)
            if value is not None and not callable(value):
                raise DefinitionError(f"Step {self.name!r}: {attr} must be callable.")
        if self.retry is not None and not isinstance(self.retry, Retry):
            raise DefinitionError(f"Step {self.name!r}: retry must be a Retry instance.")
        if self.timeout is not None and not self.timeout > 0:
            raise DefinitionError(f"Step {self.name!r}: timeout must be a positive number.")
        if isinstance(self.uses, str) or not all(isinstance(name, str) for name in self.uses):
            raise DefinitionError(
                f"Step {self.name!r}: uses must be a tuple of context field names."
            )
        object.__setattr__(self, "uses", tuple(self.uses))
        if self.uses and not self.after_commit:
            raise DefinitionError(
                f"Step {self.name!r}: uses names the context fields an after-commit step "
                "needs in its worker; other steps see the whole context."
            )
        if isinstance(self.outputs, str) or not all(
            isinstance(name, str) and name.isidentifier() for name in self.outputs
        ):
            raise DefinitionError(
                f"Step {self.name!r}: outputs must be a tuple of context field names."
            )
        object.__setattr__(self, "outputs", tuple(self.outputs))
        is_async = iscoroutinefunction(self.operation)
        object.__setattr__(self, "is_async", is_async)
        plain = self.critical and not self.after_commit and self.when is None
        plain = plain and self.retry is None and self.timeout is None and not is_async
        plain = plain and self.recover is None
        object.__setattr__(self, "plain", plain)

    @property
    def needs_savepoint(self) -> bool:
        """Best-effort and retried steps must be able to undo only their own writes."""
        return not self.critical or self.retry is not None

    def describe(self) -> dict[str, Any]:
        """The step's declaration as plain data (for the registry, docs and dashboards)."""
        return {
            "name": self.name,
            "operation": f"{self.operation.__module__}.{self.operation.__qualname__}",
            "critical": self.critical,
            "conditional": self.when is not None,
            "condition": None if self.when is None else _callable_name(self.when),
            "retry": None
            if self.retry is None
            else {
                "attempts": self.retry.attempts,
                "on": [kind.__name__ for kind in self.retry.on],
            },
            "compensated": self.compensate is not None or self.recover is not None,
            "journaled": self.recover is not None,
            "compensation": None if self.compensate is None else _callable_name(self.compensate),
            "after_commit": self.after_commit,
            "timeout": self.timeout,
            "uses": list(self.uses),
            "asynchronous": self.is_async,
            "outputs": list(self.outputs),
        }


def _run_by_the_engine(ctx: Any) -> Any:
    raise TypeError("A Parallel group is run by the engine, not called.")


@dataclass(frozen=True, slots=True, init=False)
class Parallel(Step[CtxT]):
    """Independent steps that run concurrently: ``Parallel("quotes", Step(...), Step(...))``.

    Each branch keeps its own flags, retry, timeout and compensation, and works
    on its own copy of the context; when all branches are done, the fields each
    one declares in ``outputs`` are merged back in declared order (two branches
    may not declare the same field). Sync operations run on worker threads,
    async ones on the event loop. Branches must not use the database: the run's
    transaction belongs to the run's thread, so a query from a branch is refused.

    The group is critical when one of its branches is; ``when`` skips the whole
    group. A group is a pipeline entry like a step (it has a name, a record in
    the result and its wall time as a metric), so code that lists steps sees it.
    """

    branches: tuple[Step[CtxT], ...] = ()

    def __init__(
        self, name: str, *branches: Step[CtxT], when: Callable[[CtxT], bool] | None = None
    ) -> None:
        critical = any(isinstance(branch, Step) and branch.critical for branch in branches)
        Step.__init__(self, name, _run_by_the_engine, critical=critical, when=when)
        object.__setattr__(self, "branches", tuple(branches))
        object.__setattr__(self, "plain", False)
        if len(self.branches) < 2:
            raise DefinitionError(f"Parallel group {name!r} needs at least two steps.")
        written: dict[str, str] = {}
        for branch in self.branches:
            if not isinstance(branch, Step) or isinstance(branch, Parallel):
                raise DefinitionError(
                    f"Parallel group {name!r}: {branch!r} is not a Step (groups do not nest)."
                )
            if branch.after_commit:
                raise DefinitionError(
                    f"Parallel group {name!r}: step {branch.name!r} runs after commit; "
                    "declare it outside the group."
                )
            if branch.recover is not None:
                raise DefinitionError(
                    f"Parallel group {name!r}: step {branch.name!r} is journaled (recover=), "
                    "and the journal is written through the database, which steps of a "
                    "group may not use; declare it outside the group."
                )
            for output in branch.outputs:
                if output in written:
                    raise DefinitionError(
                        f"Parallel group {name!r}: steps {written[output]!r} and "
                        f"{branch.name!r} both write {output!r}; a field has one writer."
                    )
                written[output] = branch.name

    def describe(self) -> dict[str, Any]:
        return {
            **Step.describe(self),
            "operation": None,
            "branches": [branch.describe() for branch in self.branches],
        }


def flag_words(step: Mapping[str, Any]) -> list[str]:
    """A step's declaration (``Step.describe()``) in words, its kind first.

    ``["critical", "retried up to 3 attempts on ServiceUnavailable", "compensated"]``:
    the one wording of the API description, ``manage.py orchestrators`` and the
    dashboards.
    """
    words = ["critical" if step["critical"] else "best effort"]
    if step["conditional"]:
        words.append("conditional")
    if step["retry"]:
        attempts, on = step["retry"]["attempts"], ", ".join(step["retry"]["on"])
        words.append(f"retried up to {attempts} attempts on {on}")
    if step["compensated"]:
        words.append("compensated on later failure")
    if step.get("journaled"):
        words.append("journaled: undone after a crash")
    if step["after_commit"]:
        words.append("after commit")
    if step["timeout"] is not None:
        words.append(f"{step['timeout']:g} s budget")
    if step.get("asynchronous"):
        words.append("async")
    return words


def default_metric_name(class_name: str) -> str:
    """``CreateOrderOrchestrator`` -> ``create_order``."""
    base = class_name.removesuffix("Orchestrator") or class_name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base).lower()


def validate_pipeline(owner: str, steps: Sequence[Step[Any]]) -> None:
    """Raise DefinitionError, naming ``owner`` and the step, for a malformed pipeline."""
    if not steps:
        raise DefinitionError(f"{owner}: the pipeline has no steps.")
    seen: set[str] = set()
    entries = [*steps]
    for entry in steps:
        if isinstance(entry, Parallel):
            entries.extend(entry.branches)
    for step in entries:
        if not isinstance(step, Step):
            raise DefinitionError(f"{owner}: pipeline entry {step!r} is not a Step.")
        if step.name == TRANSACTION_STEP:
            raise DefinitionError(f"{owner}: step name {step.name!r} is reserved.")
        if step.name in seen:
            raise DefinitionError(f"{owner}: step name {step.name!r} is used twice.")
        seen.add(step.name)
        if step.after_commit and step.critical:
            raise DefinitionError(
                f"{owner}: step {step.name!r} runs after commit, so it cannot be critical: "
                "the data is already committed when it runs. Declare it critical=False."
            )
        if step.after_commit and (step.compensate is not None or step.recover is not None):
            raise DefinitionError(
                f"{owner}: step {step.name!r} runs after commit, so nothing can fail after "
                "it to trigger its compensation; remove `compensate` and `recover`."
            )
