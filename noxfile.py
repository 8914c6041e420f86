"""The supported versions, each in an environment of its own: `make matrix`.

Django 5.2 LTS on Python 3.11, 3.12 and 3.13; Django 6.0 and 6.1 on 3.12 and
3.13 (Django 6 needs 3.12). Each session installs the app with every extra and
the development group, then runs the suite without the integration tests and
benchmarks (`make test` runs those on the default Python).

On Django 6 a deprecation warning raised from the project's own modules
(``RemovedInDjango70Warning`` included) fails the test that raised it.

Pick sessions with tags: ``nox -t django6`` (the 6.x sessions), ``nox -t ci``
(what ``.ci/run`` adds to its main run), or by name: ``nox -s "tests(python='3.13',
django='6.1')"``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

#: (Python, Django): the supported matrix. CI runs 5.2/3.11 itself, and the ``ci`` ones here.
MATRIX = [
    nox.param("3.11", "5.2", tags=["django5"]),
    nox.param("3.12", "5.2", tags=["django5", "ci"]),
    nox.param("3.13", "5.2", tags=["django5", "ci"]),
    nox.param("3.12", "6.0", tags=["django6", "ci"]),
    nox.param("3.13", "6.0", tags=["django6"]),
    nox.param("3.12", "6.1", tags=["django6"]),
    nox.param("3.13", "6.1", tags=["django6", "ci"]),
]

#: Our modules: a deprecation warning they raise is an error on Django 6.
OWN_MODULES = r"(orchestration|orders|config|tests)(\..*)?"
DEPRECATIONS = [
    f"error::{category}:{OWN_MODULES}"
    for category in ("DeprecationWarning", "PendingDeprecationWarning")
]


#: Packages of the development group whose newest release does not declare a Django yet,
#: though the suite passes with it there: installed without their dependencies' check.
UNDECLARED = {
    # 2.5.0 declares Django<6.1 (config/postgresql subclasses its database wrapper).
    "6.1": {"django-prometheus"},
}


def _group(name: str) -> list[str]:
    """The requirements of dependency group ``name`` (pyproject.toml), its includes resolved."""
    groups = tomllib.loads(Path("pyproject.toml").read_text())["dependency-groups"]
    found: list[str] = []
    for item in groups[name]:
        found += _group(item["include-group"]) if isinstance(item, dict) else [item]
    return found


@nox.session
@nox.parametrize(("python", "django"), MATRIX)
def tests(session: nox.Session, django: str) -> None:
    # Dependency groups (`--group`) need a newer pip than some Pythons bundle.
    session.install("--quiet", "--upgrade", "pip")
    app = ("--quiet", "-e", ".[drf,dashboards,opentelemetry]", f"Django~={django}.0")
    undeclared = UNDECLARED.get(django, set())
    if undeclared:
        dev = [Requirement(each) for each in _group("dev")]
        session.install(*app, *(str(each) for each in dev if each.name not in undeclared))
        session.install(
            "--quiet", "--no-deps", *(str(each) for each in dev if each.name in undeclared)
        )
    else:
        session.install(*app, "--group", "dev")
    warnings = []
    if not django.startswith("5."):
        # The ini option takes regular expressions for the module (-W would escape them).
        warnings = ["-o", "filterwarnings=" + "\n".join(DEPRECATIONS)]
    session.run(
        "python",
        "-m",
        "pytest",
        "-m",
        "not integration and not bench",
        "-p",
        "no:cacheprovider",
        *warnings,
        *session.posargs,
        env={"DJANGO_SETTINGS_MODULE": "config.settings"},
    )
