"""What an orchestrator run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from orchestration.context import StepError

ResultT = TypeVar("ResultT")

StepStatus = Literal[
    "ok", "failed", "skipped", "timed_out", "compensated", "queued", "deferred", "cancelled"
]


@dataclass(slots=True, eq=False)
class StepRecord:
    """How one step went.

    ``status`` is ``queued`` for an after-commit step: it was queued in the
    run's transaction and a task worker runs it once that commits. ``compensation`` is None, or
    ``"failed"`` when the step's compensation raised (``compensation_error``
    says why); a step whose compensation succeeded has status ``compensated``.

    A parallel group has a record of its own (``kind="group"``, its wall time
    as ``duration_ms``), followed by its steps' records, in declared order,
    whose ``group`` names it. A step of a group that never started, because
    another step of the group failed critically, has status ``cancelled``.
    """

    name: str
    status: StepStatus
    critical: bool
    attempts: int = 0
    duration_ms: float = 0.0
    error: StepError | None = None
    compensation: Literal["failed"] | None = None
    compensation_error: str | None = None
    kind: Literal["step", "group"] = "step"
    group: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "critical": self.critical,
            "attempts": self.attempts,
            "duration_ms": self.duration_ms,
            "error": None if self.error is None else self.error.as_dict(),
            "compensation": self.compensation,
            "kind": self.kind,
            "group": self.group,
        }


@dataclass(slots=True, eq=False)
class OrchestratorResult(Generic[ResultT]):
    """The outcome of ``execute``: data on success, the critical error otherwise."""

    success: bool
    orchestrator: str
    request_id: str
    data: ResultT | None = None
    error: StepError | None = None
    warnings: list[StepError] = field(default_factory=list)
    duration_ms: float = 0.0
    steps: list[StepRecord] = field(default_factory=list)
    #: The OpenTelemetry trace the run belongs to, when tracing is on.
    trace_id: str | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """Milliseconds per step that ran (failed steps included, skipped ones not)."""
        return {
            record.name: record.duration_ms
            for record in self.steps
            if record.status not in ("skipped", "queued", "deferred", "cancelled")
        }

    @property
    def queued(self) -> list[str]:
        """The after-commit steps queued for a task worker."""
        return [record.name for record in self.steps if record.status == "queued"]

    @property
    def status_code(self) -> int:
        """The HTTP status of the failure (200 on success; views choose their own)."""
        return 200 if self.error is None else self.error.status

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)
