"""The engine is generic over context, result and input: mypy catches a wrong context.

A pipeline annotated ``ClassVar[Sequence[Step[Ctx]]]`` (as the orders app and
the scaffolder's output are) has every operation checked against the
orchestrator's context; ``initialize_context`` must build that context and
``execute`` returns the declared result type.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api as mypy

ROOT = Path(__file__).resolve().parent.parent

HEADER = """
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from orchestration import BaseOrchestrator, OperationContext, Step


@dataclass(kw_only=True, eq=False)
class PlaceContext(OperationContext):
    quantity: int = 0


@dataclass(kw_only=True, eq=False)
class RefundContext(OperationContext):
    amount: int = 0


def reserve(ctx: PlaceContext) -> PlaceContext:
    return ctx


def refund(ctx: RefundContext) -> RefundContext:
    return ctx
"""

CORRECT = """
class Place(BaseOrchestrator[PlaceContext, int, int]):
    pipeline: ClassVar[Sequence[Step[PlaceContext]]] = (Step("reserve", reserve),)

    def initialize_context(self, input: int, **kwargs: Any) -> PlaceContext:
        return PlaceContext(quantity=input, **kwargs)

    def build_result(self, ctx: PlaceContext) -> int:
        return ctx.quantity


def placed() -> int | None:
    return Place().execute(3).data
"""

WRONG = """
class Place(BaseOrchestrator[PlaceContext, int, int]):
    pipeline: ClassVar[Sequence[Step[PlaceContext]]] = (
        Step("reserve", reserve),
        Step("refund", refund),
    )

    def initialize_context(self, input: int, **kwargs: Any) -> RefundContext:
        return RefundContext(**kwargs)

    def build_result(self, ctx: PlaceContext) -> int:
        return ctx.quantity


def placed() -> str:
    return Place().execute(3).data
"""


def type_check(tmp_path: Path, source: str) -> tuple[str, int]:
    module = tmp_path / "pipeline_under_check.py"
    module.write_text(HEADER + source)
    stdout, stderr, status = mypy.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "cache"),
            str(module),
        ]
    )
    return stdout + stderr, status


def test_a_consistent_orchestrator_type_checks(tmp_path):
    output, status = type_check(tmp_path, CORRECT)

    assert status == 0, output


def test_a_wrong_context_or_result_type_is_reported(tmp_path):
    output, status = type_check(tmp_path, WRONG)

    assert status == 1
    assert 'Argument 2 to "Step" has incompatible type "Callable[[RefundContext], ' in output
    assert 'Return type "RefundContext" of "initialize_context" incompatible' in output
    assert 'Incompatible return value type (got "int | None", expected "str")' in output
