"""The tutorial, followed as written: a fresh project, its files and commands, its tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs.blocks import Block, blocks, page

pytestmark = pytest.mark.integration

TUTORIAL = page("tutorial.md")
APPEND = ": add at the end"


def target(block: Block) -> tuple[str, bool]:
    """The file a Python block belongs to (its first line names it), and whether it is added
    to the end of a file the project already has."""
    first = block.body.splitlines()[0]
    assert first.startswith("# "), f"{block} does not start with the file it belongs to"
    name = first.removeprefix("# ")
    return name.removesuffix(APPEND), name.endswith(APPEND)


def commands(block: Block) -> list[str]:
    """A shell block's commands; `pip install` is left out: the suite's environment has the
    app already (tests/package/test_wheel.py installs the wheel into a fresh one)."""
    lines = [line for line in block.body.splitlines() if line.strip()]
    return [line for line in lines if not line.startswith("pip install ")]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_", "ORCHESTRATION"))
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{command}"],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    steps = [block for block in blocks(TUTORIAL) if block.lang in ("sh", "python")]
    assert [block.lang for block in steps].count("sh") >= 3
    outputs = []

    for block in steps:
        if block.lang == "python":
            name, append = target(block)
            path = tmp_path / name
            if append:
                assert path.exists(), f"{block}: {name} should exist by now"
                path.write_text(path.read_text() + "\n" + block.body)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(block.body)
            continue
        for command in commands(block):
            completed = run(command, tmp_path)
            assert completed.returncode == 0, f"{block}: {command}\n{completed.stderr}"
            outputs.append((command, completed.stdout + completed.stderr))

    said = dict(outputs)
    assert "signup.orchestrators.SignUp" in said["python manage.py orchestrators"]
    assert "Ran 4 tests" in said["python manage.py test signup"]
    assert "OK" in said["python manage.py test signup"]
