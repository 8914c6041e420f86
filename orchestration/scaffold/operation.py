"""`generate operation`: one more step at the end of an existing pipeline."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import types
import typing
from decimal import Decimal
from typing import Any

from orchestration.scaffold.names import ScaffoldError, ServiceName, operation_name
from orchestration.scaffold.plan import Plan, render
from orchestration.scaffold.project import Project, resolve_app
from orchestration.scaffold.service import Operation, add_operation_test
from orchestration.scaffold.sources import (
    append_to_list,
    find_class,
    find_list,
    merge_module,
    parse,
)

_SAMPLES: dict[Any, str] = {str: '"sample"', int: "1", float: "1.0", bool: "True"}


def plan_operation(
    project: Project,
    *,
    app: str,
    orchestrator: str,
    name: str,
    best_effort: bool = False,
    tests: bool = True,
) -> Plan:
    """Every file change `generate operation` makes, checked but not written."""
    app = resolve_app(project, app, allow_new=False).name
    operation = Operation(operation_name(name), critical=not best_effort)
    plan = Plan(project.root)
    path = f"{app}/orchestrators.py"
    source = plan.read(path)
    if source is None:
        raise ScaffoldError(f"{path} does not exist.")
    class_name = _class_name(parse(source, path), orchestrator, path)
    declared = _step_names(_pipeline(parse(source, path), class_name, path))
    if operation.name in declared:
        raise ScaffoldError(f"{class_name} already has a step named {operation.name!r}.")
    context_class, context_module = _context_type(parse(source, path), class_name, app, path)

    with_import = merge_module(
        source, f"from {app}.operations.{operation.name} import {operation.name}\n", path
    )
    step = f'Step("{operation.name}", {operation.name}'
    step += ")" if operation.critical else ", critical=False)"
    plan.edit(
        path,
        append_to_list(with_import, _pipeline(parse(with_import, path), class_name, path), step),
    )
    plan.ensure(
        f"{app}/operations/__init__.py",
        render("package_init", docstring=f"The {app} operations: one module per pipeline step."),
    )
    plan.create(
        f"{app}/operations/{operation.name}.py",
        render(
            "operation",
            operation=operation,
            service_words=ServiceName(class_name.removesuffix("Orchestrator")).words,
            context_module=context_module,
            context_class=context_class,
        ),
    )
    if tests:
        plan.check()  # a clash says more than a context the test cannot build
        imports, arguments = sample_context(context_module, context_class)
        add_operation_test(
            plan,
            app=app,
            operation=operation,
            context_class=context_class,
            context_imports=imports,
            context_args=arguments,
        )
        plan.next_steps.append(f"pytest {app}")
    return plan


def _class_name(tree: ast.Module, given: str, path: str) -> str:
    names = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    for candidate in (given, f"{given}Orchestrator"):
        if candidate in names:
            return candidate
    raise ScaffoldError(f"{path} has no class {given!r}.")


def _pipeline(tree: ast.Module, class_name: str, path: str) -> ast.List | ast.Tuple:
    cls = find_class(tree, class_name, path)
    return find_list(cls.body, "pipeline", f"{path}, class {class_name}")


def _step_names(pipeline: ast.List | ast.Tuple) -> set[str]:
    names = set()
    for element in pipeline.elts:
        if isinstance(element, ast.Call) and element.args:
            first = element.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value)
    return names


def _context_type(tree: ast.Module, class_name: str, app: str, path: str) -> tuple[str, str]:
    """The context class in ``BaseOrchestrator[Context, ...]`` and the module it comes from."""
    cls = find_class(tree, class_name, path)
    for base in cls.bases:
        if (
            isinstance(base, ast.Subscript)
            and ast.unparse(base.value).endswith("BaseOrchestrator")
            and isinstance(base.slice, ast.Tuple)
            and isinstance(base.slice.elts[0], ast.Name)
        ):
            context = base.slice.elts[0].id
            break
    else:
        raise ScaffoldError(
            f"{path}: {class_name} does not name its context in BaseOrchestrator[...]."
        )
    for node in tree.body:
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and any((alias.asname or alias.name) == context for alias in node.names)
        ):
            return context, node.module
        if isinstance(node, ast.ClassDef) and node.name == context:
            return context, f"{app}.orchestrators"
    raise ScaffoldError(f"{path}: cannot tell where {context} is imported from.")


def sample_context(module: str, class_name: str) -> tuple[list[str], str]:
    """Import lines and constructor arguments for a context with sample values.

    Fields with defaults are left out; the others get a sample of their type
    (text, numbers, booleans, decimals, optional values and nested dataclasses).
    """
    try:
        context = getattr(importlib.import_module(module), class_name)
        hints_ok = dataclasses.is_dataclass(context)
    except (ImportError, AttributeError) as exc:
        raise ScaffoldError(f"Cannot import {module}.{class_name}: {exc}") from exc
    if not hints_ok:
        raise ScaffoldError(f"{module}.{class_name} is not a dataclass; pass --no-tests.")
    imports: dict[str, set[str]] = {module: {class_name}}
    arguments = _required_arguments(context, imports)
    lines = [
        f"from {source} import {', '.join(sorted(names))}"
        for source, names in sorted(imports.items())
    ]
    return lines, "".join(f", {name}={value}" for name, value in arguments)


def _required_arguments(cls: type, imports: dict[str, set[str]]) -> list[tuple[str, str]]:
    try:
        hints = typing.get_type_hints(cls)
    except NameError as exc:
        raise ScaffoldError(f"Cannot resolve the field types of {cls.__name__}: {exc}") from exc
    arguments = []
    for item in dataclasses.fields(cls):
        if not item.init or item.default is not dataclasses.MISSING:
            continue
        if item.default_factory is not dataclasses.MISSING:
            continue
        arguments.append((item.name, _sample(hints[item.name], cls, item.name, imports)))
    return arguments


def _sample(kind: Any, owner: type, field_name: str, imports: dict[str, set[str]]) -> str:
    if kind in _SAMPLES:
        return _SAMPLES[kind]
    if kind is Any:
        return "None"
    if kind is Decimal:
        imports.setdefault("decimal", set()).add("Decimal")
        return 'Decimal("1.00")'
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType) and type(None) in typing.get_args(kind):
        return "None"
    if origin in (list, tuple, set, dict):
        return {list: "[]", tuple: "()", set: "set()", dict: "{}"}[origin]
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        imports.setdefault(kind.__module__, set()).add(kind.__name__)
        arguments = _required_arguments(kind, imports)
        return f"{kind.__name__}({', '.join(f'{name}={value}' for name, value in arguments)})"
    raise ScaffoldError(
        f"Cannot build a sample {owner.__name__} for the operation's test: field {field_name!r} "
        f"has type {kind!r}. Pass --no-tests and write the test by hand."
    )
