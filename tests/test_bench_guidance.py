"""A benchmark run that cannot reach PostgreSQL says how to run it, and what it drops."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_a_skipped_end_to_end_benchmark_prints_how_to_run_it(tmp_path: Path):
    nowhere = f"postgres://postgres@127.0.0.1:{free_port()}/bench_e2e"
    env = {
        **os.environ,
        "BENCH_DATABASE_URL": nowhere,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'bench.sqlite3'}",
    }

    completed = subprocess.run(
        [
            sys.executable, "-m", "pytest", "tests/bench/test_end_to_end.py", "-m", "bench",
            "-k", "under_gunicorn", "-p", "no:cacheprovider", "-q",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert completed.returncode == 0, completed.stdout
    assert "1 skipped" in completed.stdout
    assert f"PostgreSQL is not reachable at {nowhere}" in completed.stdout
    assert "must be called bench_*" in completed.stdout
    assert "BENCH_DATABASE_URL=postgres://USER@HOST:5432/bench_e2e make bench" in completed.stdout
