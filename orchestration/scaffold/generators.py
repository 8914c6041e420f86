"""The generators behind `manage.py generate`: a service, or one more operation.

``plan_service`` and ``plan_operation`` return a ``Plan`` of every file change,
checked for clashes before anything is written.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from orchestration import registry
from orchestration.extras import MissingExtra, require
from orchestration.scaffold.names import ScaffoldError, ServiceName, operation_name
from orchestration.scaffold.project import (
    App,
    Plan,
    Project,
    register_app,
    render,
    resolve_app,
)
from orchestration.scaffold.sources import (
    append_to_list,
    find_class,
    find_list,
    merge_module,
    parse,
)

SAMPLE_NOTE = "A sample note"

#: Every new or longer pipeline changes the dashboards (`generate_dashboards --check` fails).
REGENERATE_DASHBOARDS = "python manage.py generate_dashboards"


@dataclass(frozen=True)
class Operation:
    name: str
    critical: bool = True

    @property
    def sentence(self) -> str:
        return self.name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class ServiceSpec:
    """Every answer of `generate service`, validated (see ``orchestration.scaffold.names``)."""

    app: App
    service: ServiceName
    operations: list[str]
    best_effort: list[str] = field(default_factory=list)
    model: str | None = None
    route: bool = True
    tests: bool = True

    @property
    def steps(self) -> list[Operation]:
        """The generated input check first, then the operations asked for."""
        return [Operation(self.service.validator)] + [
            Operation(name, name not in self.best_effort) for name in self.operations
        ]

    @property
    def url(self) -> str:
        return f"/api/{self.app.url_prefix}/{self.service.kebab}/"


def _check_free(spec: ServiceSpec) -> None:
    taken = {cls.metric_name: cls for cls in registry.registered()}
    if spec.service.snake in taken:
        cls = taken[spec.service.snake]
        raise ScaffoldError(
            f"A service named {spec.service.snake!r} already exists "
            f"({cls.__module__}.{cls.__qualname__}); choose another name."
        )
    if spec.service.validator in spec.operations:
        raise ScaffoldError(
            f"{spec.service.validator} is generated as the first step (it checks the input); "
            "leave it out of the operations."
        )
    clashing = {spec.service.context, spec.service.input, spec.service.orchestrator}
    if spec.model in clashing:
        raise ScaffoldError(f"Model name {spec.model!r} is one of the service's own type names.")


def plan_service(project: Project, spec: ServiceSpec) -> Plan:
    """Every file change `generate service` makes, checked but not written."""
    _check_free(spec)
    if spec.route:
        try:
            require("drf", "rest_framework", "drf_spectacular", feature="A route")
        except MissingExtra as exc:
            raise ScaffoldError(f"{exc}; or pass --no-route.") from exc
    app = spec.app.name
    plan = Plan(project.root)
    context = {
        "app": app,
        "app_title": spec.app.title,
        "app_class": spec.app.config_class,
        "service": spec.service,
        "operations": spec.steps,
        "best_effort": bool(spec.best_effort),
        "model": spec.model,
        "url": spec.url,
        "validator": spec.service.validator,
        "steps_constant": spec.service.steps_constant,
        "sample_note": SAMPLE_NOTE,
    }
    for package in ("operations", "tests"):
        if plan.exists(f"{app}/{package}.py"):
            plan.clashes.append(
                f"{app}/{package}.py exists; the layout needs an {package}/ package"
            )

    if not spec.app.exists:
        plan.create(f"{app}/__init__.py", render("app_init", **context))
        plan.create(f"{app}/apps.py", render("apps", **context))
        plan.create(f"{app}/migrations/__init__.py", "")
        register_app(plan, project, app)

    plan.merge(f"{app}/types.py", render("types", **context))
    plan.ensure(
        f"{app}/operations/__init__.py",
        render("package_init", docstring=f"The {app} operations: one module per pipeline step."),
    )
    plan.create(f"{app}/operations/{spec.service.validator}.py", render("validator", **context))
    for operation in spec.steps[1:]:
        plan.create(
            f"{app}/operations/{operation.name}.py",
            render(
                "operation",
                operation=operation,
                service_words=spec.service.words,
                context_module=f"{app}.types",
                context_class=spec.service.context,
            ),
        )
    plan.merge(f"{app}/orchestrators.py", render("orchestrators", **context))
    plan.merge(f"{app}/serializers.py", render("serializers", **context))

    if spec.model:
        plan.ensure(f"{app}/migrations/__init__.py")
        plan.merge(f"{app}/models.py", render("models", **context))
        plan.merge(f"{app}/admin.py", render("admin", **context))
        plan.migrate_app = app

    if spec.route:
        plan.merge(f"{app}/views.py", render("views", **context))
        _add_route(plan, spec)

    if spec.tests:
        _ensure_test_packages(plan, app)
        plan.create(
            f"{app}/tests/operations/test_{spec.service.validator}.py",
            render("test_validator", **context),
        )
        for operation in spec.steps[1:]:
            add_operation_test(
                plan,
                app=app,
                operation=operation,
                context_class=spec.service.context,
                context_module=f"{app}.types",
            )
        plan.merge(f"{app}/tests/test_orchestrators.py", render("test_orchestrators", **context))
        if spec.route:
            plan.merge(f"{app}/tests/test_views.py", render("test_views", **context))

    if not spec.app.exists and spec.tests and not _collected_by_pytest(project.root, app):
        plan.reminders.append(
            f"Add {app!r} to testpaths in pyproject.toml so that the whole suite runs its tests."
        )
    if spec.model:
        plan.next_steps.append("python manage.py migrate")
    plan.next_steps.append(REGENERATE_DASHBOARDS)
    if spec.tests:
        plan.next_steps.append(f"pytest {app}")
    return plan


def _ensure_test_packages(plan: Plan, app: str) -> None:
    plan.ensure(f"{app}/tests/__init__.py")
    plan.ensure(f"{app}/tests/operations/__init__.py")


def add_operation_test(
    plan: Plan, *, app: str, operation: Operation, context_class: str, context_module: str
) -> None:
    """Plan ``<app>/tests/operations/test_<operation>.py`` (and its packages)."""
    _ensure_test_packages(plan, app)
    plan.create(
        f"{app}/tests/operations/test_{operation.name}.py",
        render(
            "test_operation",
            module=f"{app}.operations.{operation.name}",
            operation=operation,
            context_class=context_class,
            context_module=context_module,
        ),
    )


def _add_route(plan: Plan, spec: ServiceSpec) -> None:
    """Create urls.py, or append to its ``urlpatterns`` in the style it already uses."""
    app, service = spec.app.name, spec.service
    path = f"{app}/urls.py"
    existing = plan.read(path)
    view = f"{service.pascal}View"
    if existing is not None and _imports_views_module(parse(existing, path), app):
        view = f"views.{view}"
    route = (
        f'path("{spec.app.url_prefix}/{service.kebab}/", {view}.as_view(), name="{service.kebab}")'
    )
    if existing is None:
        plan.create(path, render("urls", app=app, service=service, route=route))
        return
    try:
        if not view.startswith("views."):
            existing = merge_module(existing, f"from {app}.views import {view}\n", path)
        urlpatterns = find_list(parse(existing, path).body, "urlpatterns", path)
        plan.edit(path, append_to_list(existing, urlpatterns, route))
    except ScaffoldError as exc:
        plan.clashes.append(str(exc))


def _imports_views_module(tree: ast.Module, app: str) -> bool:
    """Whether the module says ``from <app> import views`` (then routes read ``views.X``)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == app
        and any(alias.name == "views" and alias.asname is None for alias in node.names)
        for node in tree.body
    )


def _collected_by_pytest(root: Path, app: str) -> bool:
    """False when pyproject.toml restricts pytest's ``testpaths`` to other directories."""
    try:
        config = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return True
    testpaths = config.get("tool", {}).get("pytest", {}).get("ini_options", {}).get("testpaths")
    return not testpaths or app in testpaths or "." in testpaths


# -- generate operation --------------------------------------------------------


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
    service = ServiceName(class_name.removesuffix("Orchestrator"))

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
            service_words=service.words,
            context_module=context_module,
            context_class=context_class,
        ),
    )
    plan.next_steps.append(REGENERATE_DASHBOARDS)
    if tests:
        add_operation_test(
            plan,
            app=app,
            operation=operation,
            context_class=context_class,
            context_module=context_module,
        )
        _add_to_pipeline_test(plan, app, service.steps_constant, operation)
        plan.next_steps.append(f"pytest {app}")
    return plan


def _add_to_pipeline_test(plan: Plan, app: str, constant: str, operation: Operation) -> None:
    """Append the step to the list the generated pipeline test compares with, if there is one."""
    path = f"{app}/tests/test_orchestrators.py"
    source = plan.read(path)
    entry = f'("{operation.name}", {operation.critical})'
    try:
        if source is None:
            raise ScaffoldError(f"{path} does not exist")
        steps = find_list(parse(source, path).body, constant, path)
        plan.edit(path, append_to_list(source, steps, entry))
    except ScaffoldError:
        plan.reminders.append(f"Add {entry} to the pipeline's test ({path} has no {constant}).")


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
