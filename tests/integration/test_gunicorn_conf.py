"""The hooks of config/gunicorn.conf.py, on a metrics directory of the test's own."""

from __future__ import annotations

import runpy
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.servers import ROOT

CONFIG = ROOT / "config" / "gunicorn.conf.py"


def _load(monkeypatch: pytest.MonkeyPatch, directory: Path | None) -> dict[str, Any]:
    if directory is None:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    else:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return runpy.run_path(str(CONFIG))


def test_the_metrics_directory_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="PROMETHEUS_MULTIPROC_DIR must be set"):
        _load(monkeypatch, None)


def test_starting_creates_the_directory_and_removes_old_samples(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "metrics"
    config = _load(monkeypatch, directory)
    config["on_starting"](None)
    assert directory.is_dir()

    (directory / "counter_123.db").write_bytes(b"old samples")
    (directory / "histogram_123.db").write_bytes(b"old samples")
    (directory / "README").write_text("not ours")
    config["on_starting"](None)
    assert sorted(path.name for path in directory.iterdir()) == ["README"]


def test_an_exited_worker_leaves_the_live_gauges(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = _load(monkeypatch, tmp_path)
    for name in ("gauge_livesum_41.db", "gauge_livesum_42.db", "counter_41.db"):
        (tmp_path / name).write_bytes(b"")
    config["child_exit"](None, SimpleNamespace(pid=41))
    # Counters of the dead worker still count; its live gauge does not.
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "counter_41.db",
        "gauge_livesum_42.db",
    ]


def test_workers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    config = _load(monkeypatch, tmp_path)
    assert config["workers"] == 3
    assert config["preload_app"] is False
