"""What the registry says about an orchestrator, as the dashboards need it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepSpec:
    name: str
    critical: bool
    retried: bool
    compensated: bool
    conditional: bool


@dataclass(frozen=True)
class OrchestratorSpec:
    name: str
    class_path: str
    steps: tuple[StepSpec, ...]

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> OrchestratorSpec:
        """Build from ``registry.describe(cls)``."""
        return cls(
            name=description["name"],
            class_path=description["class"],
            steps=tuple(
                StepSpec(
                    name=step["name"],
                    critical=step["critical"],
                    retried=step["retry"] is not None,
                    compensated=step["compensated"],
                    conditional=step["conditional"],
                )
                for step in description["steps"]
            ),
        )

    def step_names(
        self,
        *,
        critical: bool | None = None,
        retried: bool = False,
        compensated: bool = False,
        conditional: bool = False,
    ) -> list[str]:
        return [
            step.name
            for step in self.steps
            if (critical is None or step.critical is critical)
            and (not retried or step.retried)
            and (not compensated or step.compensated)
            and (not conditional or step.conditional)
        ]
