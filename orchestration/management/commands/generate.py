"""`manage.py generate service|operation`: the questions; orchestration.scaffold does the work.

Every question has a flag: a flag answers its question, otherwise the user is
asked. With ``--no-input`` a question without a flag takes its default, and one
without a default is an error naming the flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from django.conf import settings
from django.core.management import BaseCommand, CommandError, CommandParser
from django.core.management.base import OutputWrapper

from orchestration.scaffold.generators import ServiceSpec, plan_operation, plan_service
from orchestration.scaffold.names import (
    ScaffoldError,
    best_effort_list,
    model_name,
    operation_list,
    service_name,
)
from orchestration.scaffold.project import Plan, Project, find_project, resolve_app

T = TypeVar("T")

_YES = {"y", "yes", "true", "1"}
_NO = {"n", "no", "false", "0"}

#: Where the next steps run: a shell with the project's environment active (manage.py then
#: reads the development .env that `make install` wrote).
ACTIVATE_HINT = "     (in a shell with the virtual environment active: source .venv/bin/activate)"


def yes_no(answer: str) -> bool:
    value = answer.strip().lower()
    if value in _YES:
        return True
    if value in _NO:
        return False
    raise ScaffoldError(f"Answer yes or no, not {answer!r}.")


class Prompter:
    def __init__(
        self, stdin: IO[str], stdout: OutputWrapper, stderr: OutputWrapper, *, interactive: bool
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.interactive = interactive

    def ask(
        self,
        flag: str,
        question: str,
        given: str | None,
        parse: Callable[[str], T],
        *,
        default: str | None = None,
    ) -> T:
        """The parsed answer: from the flag, the user, or the default."""
        if given is not None:
            try:
                return parse(given)
            except ScaffoldError as exc:
                raise CommandError(f"{flag}: {exc}") from exc
        if not self.interactive:
            if default is None:
                raise CommandError(f"{flag} is required with --no-input.")
            try:
                return parse(default)
            except ScaffoldError as exc:
                raise CommandError(f"{flag}: {exc}") from exc
        suffix = f" [{default}]" if default else ""
        while True:
            self.stdout.write(f"{question}{suffix}: ", ending="")
            self.stdout.flush()
            line = self.stdin.readline()
            if not line:
                raise CommandError(f"Input ended before {flag} was answered.")
            answer = line.strip() or (default or "")
            try:
                return parse(answer)
            except ScaffoldError as exc:
                self.stderr.write(str(exc))


class Command(BaseCommand):
    help = (
        "Generate an orchestrated service (types, operations, orchestrator, endpoint, tests) "
        "or add an operation at the end of an existing pipeline. Never overwrites a file."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        kinds = parser.add_subparsers(dest="kind", required=True, metavar="{service,operation}")

        service = kinds.add_parser("service", help="A new service in a new or existing app.")
        service.add_argument("--app", help="The app: an existing local app or a new one.")
        service.add_argument("--service", help="The service name, e.g. SubmitReview.")
        service.add_argument(
            "--operations",
            help="Operation names in pipeline order, comma separated; validate_<service>, "
            "which checks the input, is generated before them.",
        )
        service.add_argument(
            "--best-effort",
            help="The operations whose failure must not stop the pipeline (default: none).",
        )
        model = service.add_mutually_exclusive_group()
        model.add_argument("--model", metavar="NAME", help="Add a model stub of this name.")
        model.add_argument(
            "--no-model", dest="model", action="store_const", const="", help="No model (default)."
        )
        service.add_argument(
            "--route",
            action=argparse.BooleanOptionalAction,
            help="Add a view and its URL (default: yes).",
        )
        service.add_argument(
            "--tests", action=argparse.BooleanOptionalAction, help="Add tests (default: yes)."
        )

        operation = kinds.add_parser("operation", help="One more step at the end of a pipeline.")
        operation.add_argument("--app", help="The app whose orchestrators.py holds the pipeline.")
        operation.add_argument("--orchestrator", help="The orchestrator class, e.g. SubmitReview.")
        operation.add_argument("--name", help="The new operation's name.")
        operation.add_argument(
            "--best-effort", action="store_true", help="Declare the step critical=False."
        )
        operation.add_argument(
            "--tests", action=argparse.BooleanOptionalAction, default=True, help="Add its test."
        )

        for subparser in (service, operation):
            subparser.add_argument(
                "--no-input",
                "--noinput",
                dest="interactive",
                action="store_false",
                help="Ask nothing: take the answers from the flags.",
            )
            subparser.add_argument(
                "--dry-run", action="store_true", help="Print the changes; write nothing."
            )
            subparser.add_argument(
                "--root",
                type=Path,
                help="The directory that holds the apps (default: the current directory when "
                "it holds the settings package, else the directory it is imported from).",
            )
            subparser.add_argument(
                "--settings-file",
                type=Path,
                help="The module whose LOCAL_APPS or INSTALLED_APPS list gets a new app "
                "(default: the settings module, or a module beside it that has the list).",
            )
            subparser.add_argument(
                "--urls-file",
                type=Path,
                help="The root URLconf that mounts a new app's urls under api/ (default: "
                "ROOT_URLCONF's module; left alone when it mounts the listed apps itself).",
            )

    def handle(self, *args: Any, **options: Any) -> None:
        prompter = Prompter(
            options.get("stdin") or sys.stdin,
            self.stdout,
            self.stderr,
            interactive=options["interactive"],
        )
        try:
            project = find_project(
                settings_module=settings.SETTINGS_MODULE,
                urlconf=settings.ROOT_URLCONF,
                root=options["root"],
                settings_file=options["settings_file"],
                urls_file=options["urls_file"],
            )
            if options["kind"] == "service":
                plan = plan_service(project, self._service_spec(project, prompter, options))
            else:
                plan = self._operation_plan(project, prompter, options)
            if options["dry_run"]:
                self.stdout.write(plan.describe())
                return
            self._report(plan)
        except ScaffoldError as exc:
            raise CommandError(str(exc)) from exc

    def _service_spec(
        self, project: Project, ask: Prompter, options: dict[str, Any]
    ) -> ServiceSpec:
        app = ask.ask(
            "--app", "App (new or existing)", options["app"], lambda v: resolve_app(project, v)
        )
        service = ask.ask(
            "--service", "Service name (e.g. SubmitReview)", options["service"], service_name
        )
        operations = ask.ask(
            "--operations",
            "Operations, in pipeline order (comma separated)",
            options["operations"],
            operation_list,
        )
        best_effort = ask.ask(
            "--best-effort",
            "Best-effort operations (comma separated, empty for none)",
            options["best_effort"],
            lambda v: best_effort_list(v, operations),
            default="",
        )
        model = ask.ask(
            "--model",
            "Model class name (empty for no model)",
            options["model"],
            lambda v: model_name(v) if v.strip() else None,
            default="",
        )
        route = ask.ask(
            "--route",
            "Add a route (view and URL)?",
            _flag(options["route"]),
            yes_no,
            default="yes",
        )
        tests = ask.ask("--tests", "Add tests?", _flag(options["tests"]), yes_no, default="yes")
        return ServiceSpec(app, service, operations, best_effort, model, route, tests)

    def _operation_plan(self, project: Project, ask: Prompter, options: dict[str, Any]) -> Plan:
        app = ask.ask(
            "--app", "App", options["app"], lambda v: resolve_app(project, v, allow_new=False)
        )
        orchestrator = ask.ask(
            "--orchestrator", "Orchestrator class", options["orchestrator"], str.strip
        )
        name = ask.ask("--name", "Operation name", options["name"], str.strip)
        return plan_operation(
            project,
            app=app.name,
            orchestrator=orchestrator,
            name=name,
            best_effort=options["best_effort"],
            tests=options["tests"],
        )

    def _report(self, plan: Plan) -> None:
        created = {path for path, change in plan.changes.items() if change.creates}
        outcome = plan.write()
        for path in outcome.written:
            verb = "modified" if path in plan.changes and path not in created else "created"
            self.stdout.write(f"{verb:>9}  {path}")
        for note in outcome.notes:
            self.stderr.write(note)
        for reminder in plan.reminders:
            self.stdout.write(reminder)
        if plan.next_steps:
            self.stdout.write("Next: " + " && ".join(plan.next_steps))
            self.stdout.write(ACTIVATE_HINT)


def _flag(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")
