"""The supported versions, each in an environment of its own: `make matrix`.

Python 3.11 and every newer Python found here, with Django 5.2 LTS. Each
session installs the app with every extra and the development group, then
runs the suite without the integration tests and benchmarks (`make test` runs
those on the default Python).
"""

from __future__ import annotations

import nox

PYTHONS = ["3.11", "3.12", "3.13"]
DJANGOS = ["5.2"]

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True


@nox.session(python=PYTHONS)
@nox.parametrize("django", DJANGOS)
def tests(session: nox.Session, django: str) -> None:
    # Dependency groups (`--group`) need a newer pip than some Pythons bundle.
    session.install("--quiet", "--upgrade", "pip")
    session.install(
        "--quiet", "-e", ".[drf,dashboards,opentelemetry]", "--group", "dev", f"Django~={django}.0"
    )
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "not integration and not bench",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"DJANGO_SETTINGS_MODULE": "config.settings"},
    )
