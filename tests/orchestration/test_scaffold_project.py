"""`manage.py generate` on a copy of the whole project, checked the way CI checks code.

One module-scoped copy: a new app with a service (model, best-effort step,
route, tests), an operation appended to it, and a second service added to the
now existing app. Every check runs in a subprocess with the project's Python.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

IGNORED = shutil.ignore_patterns(
    ".venv", ".git", "db.sqlite3*", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info",
    "var", "bench-results",
)  # fmt: skip

SUBMIT_REVIEW = [
    "generate", "service", "--no-input", "--app=reviews", "--service=SubmitReview",
    "--operations=save_review,notify_moderators",
    "--best-effort=notify_moderators", "--model=Review",
]  # fmt: skip
AUDIT_REVIEW = [
    "generate", "operation", "--no-input", "--app=reviews", "--orchestrator=SubmitReview",
    "--name=audit_review", "--best-effort",
]  # fmt: skip
ARCHIVE_REVIEW = [
    "generate", "service", "--no-input", "--app=reviews", "--service=archive_review",
    "--operations=load_review,archive_review",
]  # fmt: skip


@dataclass(frozen=True)
class Generated:
    root: Path
    env: dict[str, str]
    outputs: list[str]

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [PYTHON, *args],
            cwd=self.root,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def manage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run("manage.py", *args)


def _database_for_generated_tests(env: dict[str, str], root: Path) -> str:
    """The suite's database engine, under a name of its own so the two runs never collide."""
    url = env.get("DATABASE_URL", "")
    parts = urlsplit(url)
    if parts.scheme.startswith("postgres"):
        name = f"{parts.path.lstrip('/') or 'postgres'}_generated_{os.getpid()}"
        return urlunsplit(parts._replace(path=f"/{name}"))
    return f"sqlite:///{root / 'generated.sqlite3'}"


def _ok(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, f"{completed.args}\n{completed.stdout}\n{completed.stderr}"
    return completed.stdout


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    root = tmp_path_factory.mktemp("project") / "project"
    shutil.copytree(PROJECT_ROOT, root, ignore=IGNORED)
    env = {
        **os.environ,
        "DJANGO_SECRET_KEY": "insecure-key-for-the-generated-project",
        "DJANGO_DEBUG": "0",
        "DATABASE_URL": f"sqlite:///{root / 'db.sqlite3'}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    project = Generated(root, env, [])
    for command in (SUBMIT_REVIEW, AUDIT_REVIEW, ARCHIVE_REVIEW):
        project.outputs.append(_ok(project.manage(*command)))
    return project


def _files(root: Path) -> set[str]:
    return {
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if "__pycache__" not in path.parts
    }


def test_a_new_app_is_laid_out_and_wired(generated: Generated) -> None:
    app = generated.root / "reviews"
    expected = {
        "__init__.py", "apps.py", "models.py", "admin.py", "types.py", "orchestrators.py",
        "serializers.py", "views.py", "urls.py", "migrations/__init__.py",
        "migrations/0001_initial.py", "operations/__init__.py",
        "operations/validate_submit_review.py", "operations/save_review.py",
        "operations/notify_moderators.py", "operations/audit_review.py",
        "operations/validate_archive_review.py", "operations/load_review.py",
        "operations/archive_review.py",
        "tests/__init__.py", "tests/operations/__init__.py",
        "tests/operations/test_validate_submit_review.py", "tests/operations/test_save_review.py",
        "tests/operations/test_notify_moderators.py", "tests/operations/test_audit_review.py",
        "tests/operations/test_validate_archive_review.py", "tests/operations/test_load_review.py",
        "tests/operations/test_archive_review.py",
        "tests/test_orchestrators.py", "tests/test_views.py",
    }  # fmt: skip
    assert _files(app) == expected
    local_apps = (generated.root / "config" / "local_apps.py").read_text()
    assert local_apps.rstrip().endswith('"reviews",\n]')
    first = generated.outputs[0]
    assert "created  reviews/migrations/0001_initial.py" in first
    assert " modified  config/local_apps.py" in first
    assert (
        "Next: python manage.py migrate && python manage.py generate_dashboards && pytest reviews"
        in first
    )
    assert "Next: python manage.py generate_dashboards && pytest reviews" in generated.outputs[1]


def test_generated_code_passes_ruff(generated: Generated) -> None:
    targets = ["reviews", "config/local_apps.py"]
    _ok(generated.run("-m", "ruff", "check", *targets))
    _ok(generated.run("-m", "ruff", "format", "--check", *targets))


def test_migrations_match_the_models(generated: Generated) -> None:
    _ok(generated.manage("makemigrations", "--check", "--dry-run"))


def test_the_generated_tests_pass(generated: Generated) -> None:
    env = {
        **generated.env,
        "DATABASE_URL": _database_for_generated_tests(generated.env, generated.root),
    }

    output = _ok(generated.run("-m", "pytest", "reviews", "-p", "no:cacheprovider", "-q", env=env))

    # 5 operations and 2 input checks (2 tests each), 2 x 3 orchestrator tests, 2 x 2 HTTP tests.
    assert "19 passed" in output


def test_the_generated_tests_hold_once_the_operations_do_real_work(generated: Generated) -> None:
    # Real operations replace the placeholders: only the marked example tests are about them.
    operations = generated.root / "reviews" / "operations"
    placeholders = {path: path.read_text() for path in operations.glob("*.py")}
    env = {
        **generated.env,
        "DATABASE_URL": _database_for_generated_tests(generated.env, generated.root),
    }
    try:
        for path, source in placeholders.items():
            if "def " in source and not path.name.startswith("validate_"):
                path.write_text(
                    source.replace(
                        f'ctx.results["{path.stem}"] = "done"',
                        'raise NotFound("Nothing to work on yet.")',
                    ).replace('"""\n\nfrom', '"""\n\nfrom orchestration import NotFound\nfrom', 1)
                )
        completed = generated.run(
            "-m", "pytest", "reviews", "-p", "no:cacheprovider", "-q", env=env
        )
    finally:
        for path, source in placeholders.items():
            path.write_text(source)

    failed = sorted(
        # With CI set, pytest's summary lines carry the whole message: "FAILED path::name - ...".
        line.split("::")[-1].split(" - ")[0]
        for line in completed.stdout.splitlines()
        if line.startswith("FAILED")
    )
    assert failed == [
        "test_example_archive_review_runs_every_step",
        "test_example_submit_review_runs_every_step",
    ], completed.stdout
    assert "17 passed" in completed.stdout


def test_the_endpoint_is_documented_without_warnings(generated: Generated) -> None:
    schema_file = generated.root / "schema.json"
    _ok(
        generated.manage(
            "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json",
            "--file", str(schema_file),
        )
    )  # fmt: skip
    schema = json.loads(schema_file.read_text())
    operation = schema["paths"]["/api/reviews/submit-review/"]["post"]
    assert "| 4 | `audit_review` | best effort |" in operation["description"]
    assert {"200", "400", "401"} <= set(operation["responses"])
    assert "/api/reviews/archive-review/" in schema["paths"]


def test_the_listing_shows_the_new_pipelines(generated: Generated) -> None:
    listed = json.loads(_ok(generated.manage("orchestrators", "--format", "json")))

    pipelines = {entry["name"]: entry for entry in listed}
    steps = pipelines["submit_review"]["steps"]
    assert [(step["name"], step["critical"]) for step in steps] == [
        ("validate_submit_review", True),
        ("save_review", True),
        ("notify_moderators", False),
        ("audit_review", False),
    ]
    assert pipelines["submit_review"]["class"] == "reviews.orchestrators.SubmitReview"
    assert "archive_review" in pipelines


def test_the_next_dashboard_generation_includes_the_service(generated: Generated) -> None:
    # The committed dashboards are stale until the hint's generate_dashboards runs.
    stale = generated.manage("generate_dashboards", "--check")
    assert stale.returncode != 0
    assert "missing: grafana/dashboards/orchestrator-submit_review.json" in stale.stderr
    output_dir = generated.root / "generated-dashboards"

    _ok(generated.manage("generate_dashboards", "--output", str(output_dir)))

    mentions = [
        path.name
        for path in output_dir.rglob("*.json")
        if '"submit_review"' in path.read_text() or "submit_review" in path.name
    ]
    assert any("submit_review" in name for name in mentions), sorted(
        path.name for path in output_dir.rglob("*")
    )


def test_running_it_again_changes_nothing(generated: Generated) -> None:
    app = generated.root / "reviews"
    before = {path: (app / path).read_text() for path in _files(app)}

    again = generated.manage(*SUBMIT_REVIEW)
    operation_again = generated.manage(*AUDIT_REVIEW)

    assert again.returncode != 0
    assert "A service named 'submit_review' already exists" in again.stderr
    assert operation_again.returncode != 0
    assert "already has a step named 'audit_review'" in operation_again.stderr
    after = {path: (app / path).read_text() for path in _files(app)}
    assert after == before
