"""The Makefile's developer targets, run the way a newcomer runs them."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAKEFILE = ROOT / "Makefile"
VENV = Path(sys.prefix)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh shell with the virtual environment activated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def make(directory: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    """``make`` with the project's Makefile, in ``directory`` (which links the venv)."""
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-o",
            ".venv/.installed",
            "-f",
            str(MAKEFILE),
            "-C",
            str(directory),
            *targets,
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory for make: the project's pyproject.toml and a link to the installed venv."""
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # keeps it older
    (tmp_path / ".venv").symlink_to(VENV)
    return tmp_path


def manage_py(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["python", "manage.py", *args],
        cwd=ROOT,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_install_writes_a_development_env_file_and_never_overwrites_it(workdir: Path):
    assert make(workdir, "install").returncode == 0
    written = (workdir / ".env").read_text()
    assert "DJANGO_DEBUG=1" in written.splitlines()

    (workdir / ".env").write_text("DJANGO_DEBUG=1\nLOG_LEVEL=DEBUG\n")
    assert make(workdir, "install").returncode == 0

    assert (workdir / ".env").read_text() == "DJANGO_DEBUG=1\nLOG_LEVEL=DEBUG\n"


def test_the_env_file_is_not_committed():
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False, capture_output=True
    )
    if ignored.returncode == 128:
        pytest.skip("not a git checkout")
    assert ignored.returncode == 0


def test_manage_py_runs_by_hand_with_the_env_file_that_install_writes(workdir: Path):
    assert make(workdir, ".env").returncode == 0

    completed = manage_py("check", DJANGO_ENV_FILE=str(workdir / ".env"))

    assert completed.returncode == 0, completed.stderr
    assert "System check identified no issues" in completed.stdout


def test_without_a_secret_key_manage_py_says_so_in_one_line(tmp_path: Path):
    completed = manage_py("check", DJANGO_ENV_FILE=str(tmp_path / "missing.env"))

    assert completed.returncode == 1
    assert completed.stderr.startswith("Configuration error: DJANGO_SECRET_KEY must be set")
    assert len(completed.stderr.strip().splitlines()) == 1
    assert "Traceback" not in completed.stderr


def test_variables_in_the_environment_win_over_the_env_file(tmp_path: Path):
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_DEBUG=1\n")

    completed = manage_py("check", DJANGO_ENV_FILE=str(env_file), DJANGO_DEBUG="0")

    assert completed.returncode == 1
    assert "DJANGO_SECRET_KEY must be set" in completed.stderr


def test_format_formats_even_when_lint_errors_remain_and_then_fails(workdir: Path):
    module = workdir / "messy.py"
    # F821 (undefined name) cannot be fixed automatically; the spacing can be formatted.
    module.write_text("import os\ndef   answer( ):\n    return  undefined_name\n")

    completed = make(workdir, "format")

    assert completed.returncode != 0
    assert module.read_text() == "def answer():\n    return undefined_name\n"
    assert "F821" in completed.stdout


def test_lint_type_checks_an_app_the_scaffolder_generated(tmp_path: Path):
    project = tmp_path / "project"
    shutil.copytree(
        ROOT,
        project,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "*.sqlite3", "__pycache__", ".*_cache", "var", "bench-results"
        ),
    )
    env = clean_env(DJANGO_DEBUG="1", DATABASE_URL=f"sqlite:///{project / 'db.sqlite3'}")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["python", *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
        )

    generated = run(
        "manage.py", "generate", "service", "--no-input", "--app=billing",
        "--service=IssueInvoice", "--operations=price_invoice,send_invoice",
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    operation = project / "billing" / "operations" / "price_invoice.py"
    operation.write_text(operation.read_text() + "\n\ndef total() -> int:\n    return 'ten'\n")

    # The command `make lint` runs, with the project's configuration only.
    checked = run("-m", "mypy", "--cache-dir", str(tmp_path / "mypy-cache"))

    assert checked.returncode == 1
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, checked.stdout
    assert errors[0].startswith("billing/operations/price_invoice.py:")
    assert "Incompatible return value type" in errors[0]


def test_make_serve_ignores_the_development_env_and_names_the_missing_secret_key(
    tmp_path: Path,
):
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'serve.sqlite3'}")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "-C", str(ROOT), "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:  # it started serving: stop what this test started
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()

    assert process.returncode != 0
    assert "Configuration error: DJANGO_SECRET_KEY must be set" in stderr
    assert "Traceback" not in stderr
