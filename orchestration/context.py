"""The context an orchestrator's operations share, and the per-request state."""

from __future__ import annotations

import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestration.result import OrchestratorResult

#: The id of the request (or job) being served; set by TimingMiddleware.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)

#: Results of the runs in the current request, read by TimingMiddleware.
collected_runs: ContextVar[list[OrchestratorResult[Any]] | None] = ContextVar(
    "collected_runs", default=None
)

#: The deadline (perf_counter seconds) of the step that is running, if it has a timeout.
_step_deadline: ContextVar[float | None] = ContextVar("step_deadline", default=None)

#: Set when the parallel group of the running branch has been cancelled.
_group_cancelled: ContextVar[threading.Event | None] = ContextVar("group_cancelled", default=None)


def remaining_budget() -> float | None:
    """Seconds left in the running step's budget; 0 once its parallel group is cancelled."""
    cancelled = _group_cancelled.get()
    if cancelled is not None and cancelled.is_set():
        return 0.0
    deadline = _step_deadline.get()
    if deadline is None:
        return None
    return max(0.0, deadline - time.perf_counter())


def sleep_unless_cancelled(seconds: float) -> bool:
    """Sleep; return True, early, if the running branch's group is cancelled meanwhile."""
    cancelled = _group_cancelled.get()
    if cancelled is None:
        time.sleep(seconds)
        return False
    return cancelled.wait(seconds)


#: The journal key of the running step's external effect, if the step is journaled.
_effect_key: ContextVar[str | None] = ContextVar("effect_key", default=None)


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(kw_only=True, eq=False)
class StepError:
    """What went wrong in one step, in terms safe to show a client."""

    step: str
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    status: int = 500

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }


@dataclass(kw_only=True, eq=False)
class OperationContext:
    """Base of every domain context: subclass it and add typed fields.

    ``errors`` holds the best-effort failures so far, ``results`` per-step
    outputs that operations choose to record, ``metadata`` anything else.
    """

    request_id: str = field(default_factory=new_request_id)
    user: Any = None
    errors: list[StepError] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def remaining(self) -> float | None:
        """Seconds left in the running step's time budget (None without a timeout).

        Pass it to I/O clients (``timeout=ctx.remaining()``): the engine cannot
        interrupt a running sync function, it can only tell the operation its
        budget. The value never goes below zero, and it is zero once the step's
        parallel group has been cancelled (another branch failed critically).
        """
        return remaining_budget()

    def cancelled(self) -> bool:
        """True once the parallel group this step runs in has been cancelled."""
        cancelled = _group_cancelled.get()
        return cancelled is not None and cancelled.is_set()

    def effect_key(self) -> str:
        """The idempotency key to send with the running journaled step's external call.

        The same for every attempt of the step and for every retry of the same
        client request (same user and ``Idempotency-Key``), so that the external
        system does what it is asked once. Only journaled steps (``recover=``)
        have one.
        """
        key = _effect_key.get()
        if key is None:
            raise RuntimeError(
                "ctx.effect_key() is only available in a journaled step (declare recover=)."
            )
        return key
