"""`manage.py generate` in this process, against a small project in a temporary directory.

Only the project's `config/local_apps.py`, `config/urls.py` and `pyproject.toml` are needed for
these: the full round trip (ruff, migrations, the generated tests, the schema)
runs on a copy of the real project in test_scaffold_project.py.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from orchestration import BaseOrchestrator, OperationContext, Step

PROJECT_ROOT = Path(__file__).resolve().parents[2]

LOCAL_APPS = '"""Local apps."""\n\nLOCAL_APPS = [\n    "orchestration",\n]\n'
# Mounts every listed app itself, like the example project's config/urls.py.
URLS = "from config.local_apps import LOCAL_APPS\n\nurlpatterns = []\n"


def _noop(ctx: OperationContext) -> OperationContext:
    return ctx


@pytest.fixture
def taken_name() -> None:
    """Registers the metric name `taken_name`, so that a new service cannot take it."""

    class TakenName(BaseOrchestrator[OperationContext, None, None]):
        pipeline = (Step("noop", _noop),)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "local_apps.py").write_text(LOCAL_APPS)
    (tmp_path / "config" / "urls.py").write_text(URLS)
    (tmp_path / "pyproject.toml").write_text((PROJECT_ROOT / "pyproject.toml").read_text())
    monkeypatch.chdir(tmp_path)  # where manage.py runs: the directory of the settings package
    return tmp_path


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and ".ruff_cache" not in path.parts
    }


def _generate(*args: str, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    options: dict[str, Any] = {"stdout": out, "stderr": err}
    if stdin is not None:
        options["stdin"] = io.StringIO(stdin)
    call_command("generate", *args, **options)
    return out.getvalue(), err.getvalue()


SERVICE_FLAGS = ("--app=shelf", "--service=RestockShelf", "--operations=count_items,order_items")


def _add_app(root: Path, name: str, files: dict[str, str]) -> None:
    (root / "config" / "local_apps.py").write_text(
        LOCAL_APPS.replace('"orchestration",\n', f'"orchestration",\n    "{name}",\n')
    )
    for relative, content in {"__init__.py": "", **files}.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


# -- interactive ----------------------------------------------------------------------


def test_interactive_mode_asks_every_question_in_order(project: Path) -> None:
    answers = (
        "shelf\nRestockShelf\ncount_items, order_items ,notify_staff\nnotify_staff\n\nno\nyes\n"
    )

    out, _ = _generate("service", stdin=answers)

    questions = [
        "App (new or existing)",
        "Service name",
        "Operations, in pipeline order",
        "Best-effort operations",
        "Model class name",
        "Add a route",
        "Add tests?",
    ]
    positions = [out.index(question) for question in questions]
    assert positions == sorted(positions)
    orchestrators = (project / "shelf" / "orchestrators.py").read_text()
    assert orchestrators.index('Step("count_items"') < orchestrators.index('Step("order_items"')
    assert 'Step("notify_staff", notify_staff, critical=False)' in orchestrators
    assert 'Step("order_items", order_items)' in orchestrators
    for name in ("count_items", "order_items", "notify_staff"):
        assert (project / "shelf" / "operations" / f"{name}.py").is_file()
        assert (project / "shelf" / "tests" / "operations" / f"test_{name}.py").is_file()
    assert not (project / "shelf" / "urls.py").exists()  # no route asked for
    assert not (project / "shelf" / "models.py").exists()  # no model asked for
    assert '"shelf",' in (project / "config" / "local_apps.py").read_text()
    assert (project / "shelf" / "operations" / "validate_restock_shelf.py").is_file()
    assert orchestrators.index('Step("validate_restock_shelf"') < orchestrators.index(
        'Step("count_items"'
    )
    # The input check needs the input serializer, route or not.
    assert (project / "shelf" / "serializers.py").is_file()
    assert "Next: python manage.py generate_dashboards && pytest shelf\n" in out
    assert "virtual environment active: source .venv/bin/activate" in out
    assert "testpaths" not in out  # pytest collects every app: no reminder needed


def test_a_project_that_restricts_testpaths_is_reminded_to_add_the_app(project: Path) -> None:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            "[tool.pytest.ini_options]\n", '[tool.pytest.ini_options]\ntestpaths = ["orders"]\n'
        )
    )

    out, _ = _generate("service", "--no-input", *SERVICE_FLAGS)

    assert "Add 'shelf' to testpaths in pyproject.toml" in out


def test_interactive_mode_asks_again_after_a_bad_answer(project: Path) -> None:
    answers = "json\nshelf\nclass\nRestockShelf\ncount,count\ncount\n\n\nno\nno\n"

    out, err = _generate("service", stdin=answers)

    assert "'json' is already an importable module" in err
    assert "Service name 'class' is a Python keyword" in err
    assert "repeated: count" in err
    assert out.count("App (new or existing)") == 2
    assert (project / "shelf" / "operations" / "count.py").is_file()


def test_interactive_mode_stops_when_the_input_ends(project: Path) -> None:
    before = _snapshot(project)

    with pytest.raises(CommandError, match="Input ended before --service was answered"):
        _generate("service", stdin="shelf\n")

    assert _snapshot(project) == before


def test_flags_answer_their_questions_and_the_rest_is_asked(project: Path) -> None:
    out, _ = _generate("service", *SERVICE_FLAGS, stdin="\n\nno\nno\n")

    assert "App (new or existing)" not in out
    assert "Best-effort operations" in out
    assert (project / "shelf" / "operations" / "order_items.py").is_file()


# -- flags only -----------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["--app", "--service", "--operations"])
def test_no_input_names_the_missing_flag(project: Path, missing: str) -> None:
    flags = [flag for flag in SERVICE_FLAGS if not flag.startswith(f"{missing}=")]
    before = _snapshot(project)

    with pytest.raises(CommandError, match=f"{missing} is required with --no-input"):
        _generate("service", "--no-input", *flags)

    assert _snapshot(project) == before


BAD_INPUTS = [
    ({"--app": "2shelf"}, "is not a Python identifier"),
    ({"--app": "class"}, "is a Python keyword"),
    ({"--app": "Shelf"}, "must be lower case"),
    ({"--app": "json"}, "'json' is already an importable module"),
    ({"--app": "django"}, "'django' is already an importable module"),
    ({"--app": "auth"}, "already the label of an installed app"),
    ({"--app": "orchestration"}, "part of the framework"),
    ({"--app": "config"}, "part of the framework"),
    ({"--service": "restock-shelf"}, "is not a Python identifier"),
    ({"--service": "None"}, "is a Python keyword"),
    ({"--service": "restockShelf"}, "must be PascalCase"),
    ({"--service": "TakenName"}, "A service named 'taken_name' already exists"),
    ({"--operations": ""}, "at least one operation"),
    ({"--operations": " , "}, "at least one operation"),
    ({"--operations": "count,,order"}, "has an empty entry"),
    ({"--operations": "count,order,count"}, "repeated: count"),
    ({"--operations": "count,for"}, "'for' is a Python keyword"),
    ({"--operations": "count,Order"}, "must be lower_snake_case"),
    ({"--operations": "count,print"}, "would shadow a name"),
    ({"--operations": "validate_restock_shelf"}, "is generated as the first step"),
    ({"--operations": "count,transaction"}, "would shadow a name"),
    ({"--best-effort": "notify"}, "unknown: notify"),
    ({"--model": "shelf_item"}, "must be PascalCase"),
    ({"--model": "RestockShelfContext"}, "one of the service's own type names"),
]


@pytest.mark.usefixtures("taken_name")
@pytest.mark.parametrize(("override", "message"), BAD_INPUTS)
def test_bad_input_is_refused_and_nothing_is_written(
    project: Path, override: dict[str, str], message: str
) -> None:
    flags = dict(flag.split("=", 1) for flag in SERVICE_FLAGS) | override
    before = _snapshot(project)

    with pytest.raises(CommandError, match=message):
        _generate("service", "--no-input", *(f"{flag}={value}" for flag, value in flags.items()))

    assert _snapshot(project) == before


def test_an_app_directory_that_is_not_a_local_app_is_refused(project: Path) -> None:
    (project / "shelf").mkdir()

    with pytest.raises(CommandError, match="already exists in the project but is not listed"):
        _generate("service", "--no-input", *SERVICE_FLAGS)


def test_dry_run_prints_the_changes_and_writes_nothing(project: Path) -> None:
    before = _snapshot(project)

    out, _ = _generate("service", "--no-input", "--dry-run", *SERVICE_FLAGS, "--model=Item")

    assert _snapshot(project) == before
    assert "--- create shelf/types.py" in out
    assert "class RestockShelfContext(OperationContext):" in out
    assert "--- create shelf/operations/order_items.py" in out
    assert "--- modify config/local_apps.py" in out
    assert '+    "shelf",' in out
    assert "then run: python manage.py makemigrations shelf" in out


def test_files_that_exist_are_listed_and_nothing_is_written(project: Path) -> None:
    _add_app(
        project,
        "shelf",
        {
            "operations/__init__.py": "",
            "operations/count_items.py": "def count_items(ctx):\n    return ctx\n",
            "types.py": "class RestockShelfInput:\n    pass\n",
        },
    )
    before = _snapshot(project)

    with pytest.raises(CommandError) as raised:
        _generate("service", "--no-input", *SERVICE_FLAGS)

    assert "shelf/operations/count_items.py already exists" in str(raised.value)
    assert "shelf/types.py already defines RestockShelfInput" in str(raised.value)
    assert _snapshot(project) == before


def test_an_existing_app_is_extended_in_its_own_style(project: Path) -> None:
    _add_app(
        project,
        "shelf",
        {
            "apps.py": "",
            "types.py": '"""Shelf types."""\n\n\nclass Shelf:\n    pass\n',
            "views.py": '"""Shelf views."""\n',
            "urls.py": (
                "from django.urls import path\n\nfrom shelf import views\n\n"
                'urlpatterns = [\n    path("shelves/", views.ShelfList.as_view()),\n]\n'
            ),
        },
    )

    out, _ = _generate("service", "--no-input", "--no-tests", *SERVICE_FLAGS)

    assert "modified  shelf/types.py" in out
    assert "created  shelf/orchestrators.py" in out
    types_module = (project / "shelf" / "types.py").read_text()
    assert "class Shelf:" in types_module
    assert "class RestockShelfContext(OperationContext):" in types_module
    urls = (project / "shelf" / "urls.py").read_text()
    assert 'path("shelves/", views.ShelfList.as_view())' in urls
    assert "views.RestockShelfView.as_view()" in urls
    assert urls.index("ShelfList") < urls.index("RestockShelfView")
    assert "shelf" not in (project / "config" / "local_apps.py").read_text().split("[", 1)[0]
    assert not (project / "shelf" / "tests").exists()


# -- generate operation ---------------------------------------------------------------

ORCHESTRATORS = '''"""Shelf pipelines."""

from typing import Any

from orchestration import BaseOrchestrator, Step
from shelf.operations.count_items import count_items
from shelf.types import RestockContext


class Restock(BaseOrchestrator[RestockContext, None, None]):
    pipeline = (
        Step("count_items", count_items),
    )
'''


def test_generate_operation_appends_the_step_at_the_end(project: Path) -> None:
    _add_app(project, "shelf", {"orchestrators.py": ORCHESTRATORS, "operations/__init__.py": ""})

    out, _ = _generate(
        "operation", "--no-input", "--no-tests", "--app=shelf", "--orchestrator=Restock",
        "--name=notify_staff", "--best-effort",
    )  # fmt: skip

    orchestrators = (project / "shelf" / "orchestrators.py").read_text()
    assert "from shelf.operations.notify_staff import notify_staff" in orchestrators
    steps = orchestrators.split("pipeline = (", 1)[1]
    assert steps.index('Step("count_items"') < steps.index(
        'Step("notify_staff", notify_staff, critical=False)'
    )
    operation = (project / "shelf" / "operations" / "notify_staff.py").read_text()
    assert "from shelf.types import RestockContext" in operation
    assert "def notify_staff(ctx: RestockContext) -> RestockContext:" in operation
    assert "created  shelf/operations/notify_staff.py" in out


TEST_ORCHESTRATORS = '''"""Shelf pipeline tests."""

RESTOCK_STEPS = [
    ("count_items", True),
]
'''


def test_generate_operation_adds_its_test_and_extends_the_pipeline_test(project: Path) -> None:
    _add_app(
        project,
        "shelf",
        {
            "orchestrators.py": ORCHESTRATORS,
            "types.py": "class RestockContext:\n    pass\n",
            "tests/test_orchestrators.py": TEST_ORCHESTRATORS,
        },
    )

    out, _ = _generate(
        "operation", "--no-input", "--app=shelf", "--orchestrator=Restock", "--name=notify_staff",
        "--best-effort",
    )  # fmt: skip

    steps = (project / "shelf" / "tests" / "test_orchestrators.py").read_text()
    assert steps.index('("count_items", True)') < steps.index('("notify_staff", False)')
    test = (project / "shelf" / "tests" / "operations" / "test_notify_staff.py").read_text()
    assert "from shelf.types import RestockContext" in test
    assert '{"ctx": RestockContext, "return": RestockContext}' in test
    assert "Next: python manage.py generate_dashboards && pytest shelf" in out


def test_generate_operation_without_a_pipeline_test_says_what_to_add(project: Path) -> None:
    _add_app(project, "shelf", {"orchestrators.py": ORCHESTRATORS})

    out, _ = _generate(
        "operation", "--no-input", "--app=shelf", "--orchestrator=Restock", "--name=notify_staff",
    )  # fmt: skip

    assert 'Add ("notify_staff", True) to the pipeline\'s test' in out
    assert (project / "shelf" / "tests" / "operations" / "test_notify_staff.py").is_file()


@pytest.mark.parametrize(
    ("files", "flags", "message"),
    [
        ({}, ["--app=nowhere"], "not one of the project's apps"),
        ({"orchestrators.py": ORCHESTRATORS}, ["--orchestrator=Missing"], "has no class 'Missing'"),
        ({"orchestrators.py": ORCHESTRATORS}, ["--name=count_items"], "already has a step"),
        ({"orchestrators.py": ORCHESTRATORS}, ["--name=Notify"], "must be lower_snake_case"),
        (
            {"orchestrators.py": ORCHESTRATORS.replace("pipeline = (", "pipeline = steps() + (")},
            [],
            "`pipeline` is not a literal list",
        ),
        (
            {"orchestrators.py": ORCHESTRATORS + "\n    pipeline = ()\n"},
            [],
            "expected one `pipeline = \\[...\\]` assignment, found 2",
        ),
        (
            {
                "orchestrators.py": ORCHESTRATORS,
                "operations/notify_staff.py": "def notify_staff(ctx):\n    return ctx\n",
            },
            [],
            "shelf/operations/notify_staff.py already exists",
        ),
        ({}, [], "shelf/orchestrators.py does not exist"),
    ],
)
def test_generate_operation_refuses_bad_input(
    project: Path, files: dict[str, str], flags: list[str], message: str
) -> None:
    _add_app(project, "shelf", files)
    defaults = {"--app": "shelf", "--orchestrator": "Restock", "--name": "notify_staff"}
    given = defaults | dict(flag.split("=", 1) for flag in flags)
    before = _snapshot(project)

    with pytest.raises(CommandError, match=message):
        _generate("operation", "--no-input", *(f"{key}={value}" for key, value in given.items()))

    assert _snapshot(project) == before
