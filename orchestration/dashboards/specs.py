"""What the registry says about an orchestrator, as the dashboards need it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestration.steps import flag_words


@dataclass(frozen=True)
class StepSpec:
    name: str
    critical: bool
    #: "critical" or "best effort", as the API description and the listing say it.
    kind: str
    retried: bool
    compensated: bool
    conditional: bool
    #: The parallel group the step runs in, if any.
    group: str | None = None
    after_commit: bool = False

    @classmethod
    def from_description(cls, step: Mapping[str, Any], group: str | None = None) -> StepSpec:
        return cls(
            name=step["name"],
            critical=step["critical"],
            kind=flag_words(step)[0],
            retried=step["retry"] is not None,
            compensated=step["compensated"],
            conditional=step["conditional"],
            group=group,
            after_commit=step["after_commit"],
        )


@dataclass(frozen=True)
class GroupSpec:
    """A parallel group: its name and the names of its steps."""

    name: str
    steps: tuple[str, ...]


@dataclass(frozen=True)
class OrchestratorSpec:
    name: str
    class_path: str
    #: Every step in pipeline order, the steps of a group in its place.
    steps: tuple[StepSpec, ...]
    groups: tuple[GroupSpec, ...] = ()

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> OrchestratorSpec:
        """Build from ``registry.describe(cls)``."""
        steps: list[StepSpec] = []
        groups: list[GroupSpec] = []
        for entry in description["steps"]:
            branches = entry.get("branches")
            if branches:
                groups.append(GroupSpec(entry["name"], tuple(step["name"] for step in branches)))
                steps.extend(StepSpec.from_description(step, entry["name"]) for step in branches)
            else:
                steps.append(StepSpec.from_description(entry))
        return cls(
            name=description["name"],
            class_path=description["class"],
            steps=tuple(steps),
            groups=tuple(groups),
        )

    def pipeline_text(self) -> str:
        """``validate (critical); quotes [shipping (critical) | tax (best effort)]``."""
        parts: list[str] = []
        for step in self.steps:
            text = f"{step.name} ({step.kind})"
            if step.group is None:
                parts.append(text)
            elif parts and parts[-1].startswith(f"{step.group} ["):
                parts[-1] = f"{parts[-1][:-1]} | {text}]"
            else:
                parts.append(f"{step.group} [{text}]")
        return "; ".join(parts)

    def step_names(
        self,
        *,
        critical: bool | None = None,
        retried: bool = False,
        compensated: bool = False,
        conditional: bool = False,
        after_commit: bool = False,
    ) -> list[str]:
        return [
            step.name
            for step in self.steps
            if (critical is None or step.critical is critical)
            and (not retried or step.retried)
            and (not compensated or step.compensated)
            and (not conditional or step.conditional)
            and (not after_commit or step.after_commit)
        ]
