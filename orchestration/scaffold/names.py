"""Validation of the names a user gives the scaffolder.

Each function turns one answer into the value the generator uses, or raises
``ScaffoldError`` with a message that says what is wrong and what is allowed.
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from orchestration.steps import NAME, TRANSACTION_STEP


class ScaffoldError(Exception):
    """Bad input or a project the scaffolder cannot edit safely; nothing was written."""


APP_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
CLASS_NAME = re.compile(r"^[A-Z][A-Za-z0-9]*$")
SNAKE_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

#: Names the generated modules import next to the operations.
RESERVED_OPERATION_NAMES = frozenset(
    {TRANSACTION_STEP, "make_context", "run_step", "pytest", "pytestmark"}
)


@dataclass(frozen=True)
class ServiceName:
    """One service's names: ``SubmitReview`` -> ``submit_review``, ``submit-review``."""

    pascal: str

    @property
    def snake(self) -> str:
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", self.pascal).lower()

    @property
    def kebab(self) -> str:
        return self.snake.replace("_", "-")

    @property
    def words(self) -> str:
        return self.snake.replace("_", " ")

    @property
    def sentence(self) -> str:
        return self.words.capitalize()

    @property
    def orchestrator(self) -> str:
        return self.pascal

    @property
    def context(self) -> str:
        return f"{self.pascal}Context"

    @property
    def input(self) -> str:
        return f"{self.pascal}Input"

    @property
    def validator(self) -> str:
        """The generated first operation, which checks the input."""
        return f"validate_{self.snake}"

    @property
    def steps_constant(self) -> str:
        """The list of (step, critical) the generated pipeline test compares with."""
        return f"{self.snake.upper()}_STEPS"


def _require_identifier(kind: str, name: str) -> None:
    if not name:
        raise ScaffoldError(f"The {kind} must not be empty.")
    if not name.isidentifier() or not name.isascii():
        raise ScaffoldError(f"{kind.capitalize()} {name!r} is not a Python identifier.")
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"{kind.capitalize()} {name!r} is a Python keyword.")


def app_label(name: str) -> str:
    """A syntactically valid app name (a lower_snake_case identifier)."""
    name = name.strip()
    _require_identifier("app name", name)
    if not APP_NAME.match(name):
        raise ScaffoldError(
            f"App name {name!r} must be lower case: letters, digits and underscores, "
            "starting with a letter (it becomes a package and a URL prefix)."
        )
    return name


def service_name(name: str) -> ServiceName:
    """``SubmitReview`` or ``submit_review``; a trailing ``Orchestrator`` is dropped."""
    name = name.strip()
    _require_identifier("service name", name)
    if SNAKE_NAME.match(name):
        pascal = "".join(part.capitalize() for part in name.split("_"))
    elif CLASS_NAME.match(name):
        pascal = name
    else:
        raise ScaffoldError(
            f"Service name {name!r} must be PascalCase (SubmitReview) or snake_case "
            "(submit_review), letters and digits only."
        )
    pascal = pascal.removesuffix("Orchestrator")
    if not pascal:
        raise ScaffoldError(
            "The service name must say what the service does, not only 'Orchestrator'."
        )
    service = ServiceName(pascal)
    if not NAME.match(service.validator):
        raise ScaffoldError(
            f"Service name {name!r} is too long: its first step, {service.validator}, "
            "must fit 63 characters."
        )
    return service


def operation_name(name: str) -> str:
    """One operation: a lower_snake_case function name that is also a valid step name."""
    name = name.strip()
    _require_identifier("operation name", name)
    if not NAME.match(name):
        raise ScaffoldError(
            f"Operation name {name!r} must be lower_snake_case (letters, digits, underscores, "
            "starting with a letter, at most 63 characters): it is a function and a step name."
        )
    if name in RESERVED_OPERATION_NAMES or hasattr(builtins, name):
        raise ScaffoldError(
            f"Operation name {name!r} would shadow a name the generated code uses; choose another."
        )
    return name


def operation_list(text: str) -> list[str]:
    """Comma-separated operation names, in pipeline order, each once."""
    names = [part.strip() for part in text.split(",")]
    if not any(names):
        raise ScaffoldError("Give at least one operation (comma separated, in pipeline order).")
    if not all(names):
        raise ScaffoldError(f"The operation list {text!r} has an empty entry.")
    operations = [operation_name(name) for name in names]
    duplicates = sorted({name for name in operations if operations.count(name) > 1})
    if duplicates:
        raise ScaffoldError(f"Operation names must be unique; repeated: {', '.join(duplicates)}.")
    return operations


def best_effort_list(text: str, operations: list[str]) -> list[str]:
    """The best-effort subset of ``operations`` (comma separated; empty for none)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in operations]
    if unknown:
        raise ScaffoldError(
            f"Best-effort operations must be among the operations ({', '.join(operations)}); "
            f"unknown: {', '.join(unknown)}."
        )
    return names


def model_name(name: str) -> str:
    """A model class name in PascalCase."""
    name = name.strip()
    _require_identifier("model name", name)
    if not CLASS_NAME.match(name):
        raise ScaffoldError(f"Model name {name!r} must be PascalCase, e.g. Review.")
    return name
