"""`generate service`: an orchestrated service, from types to HTTP tests."""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from orchestration import registry
from orchestration.scaffold.names import ScaffoldError, ServiceName
from orchestration.scaffold.plan import Plan, render
from orchestration.scaffold.project import LOCAL_APPS_FILE, App, add_local_app
from orchestration.scaffold.sources import append_to_list, find_list, merge_module, parse

SAMPLE_NOTE = "A sample note"


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
        return [Operation(name, name not in self.best_effort) for name in self.operations]

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
    clashing = {spec.service.context, spec.service.input, spec.service.orchestrator}
    if spec.model in clashing:
        raise ScaffoldError(f"Model name {spec.model!r} is one of the service's own type names.")


def plan_service(root: Path, spec: ServiceSpec) -> Plan:
    """Every file change `generate service` makes, checked but not written."""
    _check_free(spec)
    app = spec.app.name
    plan = Plan(root)
    context = {
        "app": app,
        "app_title": spec.app.title,
        "app_class": spec.app.config_class,
        "service": spec.service,
        "operations": spec.steps,
        "best_effort": bool(spec.best_effort),
        "model": spec.model,
        "url": spec.url,
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
        plan.edit(LOCAL_APPS_FILE, add_local_app(plan.read(LOCAL_APPS_FILE) or "", app))

    plan.merge(f"{app}/types.py", render("types", **context))
    plan.ensure(
        f"{app}/operations/__init__.py",
        render("package_init", docstring=f"The {app} operations: one module per pipeline step."),
    )
    for operation in spec.steps:
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

    if spec.model:
        plan.ensure(f"{app}/migrations/__init__.py")
        plan.merge(f"{app}/models.py", render("models", **context))
        plan.merge(f"{app}/admin.py", render("admin", **context))
        plan.migrate_app = app

    if spec.route:
        plan.merge(f"{app}/serializers.py", render("serializers", **context))
        plan.merge(f"{app}/views.py", render("views", **context))
        _add_route(plan, spec)

    if spec.tests:
        for operation in spec.steps:
            add_operation_test(
                plan,
                app=app,
                operation=operation,
                context_class=spec.service.context,
                context_imports=[
                    f"from {app}.types import {spec.service.context}, {spec.service.input}"
                ],
                context_args=f', input={spec.service.input}(note="{SAMPLE_NOTE}")',
            )
        plan.merge(f"{app}/tests/test_orchestrators.py", render("test_orchestrators", **context))
        if spec.route:
            plan.merge(f"{app}/tests/test_views.py", render("test_views", **context))

    if not spec.app.exists and spec.tests and not _collected_by_pytest(root, app):
        plan.reminders.append(
            f"Add {app!r} to testpaths in pyproject.toml so that the whole suite runs its tests."
        )
    if spec.model:
        plan.next_steps.append("python manage.py migrate")
    if spec.tests:
        plan.next_steps.append(f"pytest {app}")
    return plan


def add_operation_test(
    plan: Plan,
    *,
    app: str,
    operation: Operation,
    context_class: str,
    context_imports: list[str],
    context_args: str,
) -> None:
    """Plan ``<app>/tests/operations/test_<operation>.py`` (and its packages)."""
    plan.ensure(f"{app}/tests/__init__.py")
    plan.ensure(f"{app}/tests/operations/__init__.py")
    plan.create(
        f"{app}/tests/operations/test_{operation.name}.py",
        render(
            "test_operation",
            module=f"{app}.operations.{operation.name}",
            operation=operation,
            context_class=context_class,
            context_imports=context_imports,
            context_args=context_args,
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
