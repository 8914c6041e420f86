"""The distribution, installed from its wheel into a fresh `django-admin startproject`.

Builds the wheel and the sdist from this checkout, installs the wheel in a new
virtual environment (first without extras, then with ``[drf]``), and uses the
app the way a project that adopts it would: an orchestrator with a best-effort
failure, the DRF glue in a view, ``manage.py check``, ``orchestrators`` and
``generate service`` whose output passes its own tests. Then the same wheel in
a fresh Django 6.1 project on Python 3.12: pip keeps Django 6.1, and an
orchestrator's after-commit step runs through ``django.tasks`` (Django's own
immediate backend). Needs the package index (pip installs Django and the extras
into the new environments).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # seconds, per step: pip may have to download Django and DRF

ORCHESTRATORS = '''"""A checkout whose notification fails: the run succeeds with a warning."""

from dataclasses import dataclass
from typing import Any

from orchestration import BaseOrchestrator, OperationContext, ServiceUnavailable, Step


@dataclass(kw_only=True, eq=False)
class CheckoutContext(OperationContext):
    items: int
    reserved: bool = False


def reserve_items(ctx: CheckoutContext) -> CheckoutContext:
    ctx.reserved = True
    return ctx


def notify_customer(ctx: CheckoutContext) -> CheckoutContext:
    raise ServiceUnavailable("The mail server is down.")


class Checkout(BaseOrchestrator[CheckoutContext, dict, int]):
    pipeline = (
        Step("reserve_items", reserve_items),
        Step("notify_customer", notify_customer, critical=False),
    )

    def initialize_context(self, input: int, **kwargs: Any) -> CheckoutContext:
        return CheckoutContext(items=input, **kwargs)

    def build_result(self, ctx: CheckoutContext) -> dict:
        return {"items": ctx.items, "reserved": ctx.reserved}
'''

VIEWS = """from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from orchestration.drf import envelope_response
from shop.orchestrators import Checkout


class CheckoutInput(serializers.Serializer):
    items = serializers.IntegerField(min_value=1)


class CheckoutView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        data = CheckoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        return envelope_response(Checkout().execute(data.validated_data["items"]))
"""

SETTINGS = """
REST_FRAMEWORK = {"EXCEPTION_HANDLER": "orchestration.drf.exception_handler"}
"""

CORE_ONLY = """
import orchestration, orchestration.engine, orchestration.middleware, orchestration.testing
import orchestration.views, orchestration.conf, orchestration.checks
try:
    import orchestration.drf
except ImportError as exc:
    print(exc)
"""

SMOKE = """
import json
from django.test import Client
from django.test.utils import setup_test_environment
from shop.orchestrators import Checkout

setup_test_environment()
result = Checkout().execute(2)
client = Client()
ok = client.post("/checkout/", {"items": 3}, content_type="application/json")
bad = client.post("/checkout/", {"items": 0}, content_type="application/json")
print(json.dumps({
    "result": {"success": result.success, "data": result.data,
               "warnings": [w.as_dict() for w in result.warnings],
               "steps": [(s.name, s.status) for s in result.steps]},
    "ok": [ok.status_code, ok.json()],
    "bad": [bad.status_code, bad.json()],
    "metrics": client.get("/metrics").content.decode(),
}))
"""


#: Nothing of this project's own configuration reaches the new one.
_ENV = {
    key: value
    for key, value in os.environ.items()
    if not key.startswith(("DJANGO_", "PROMETHEUS_", "PYTEST_"))
    and key not in {"DATABASE_URL", "EMAIL_URL", "METRICS_TOKEN", "PYTHONPATH", "VIRTUAL_ENV"}
}


@dataclass(frozen=True)
class Shop:
    directory: Path
    venv: Path
    wheel: Path
    sdist: Path
    core_only: subprocess.CompletedProcess[str]

    def python(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run([str(self.venv / "bin" / "python"), *args], self.directory, check=check)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.python("manage.py", *args, check=check)


def _run(
    command: Sequence[str], cwd: Path, *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        command, cwd=cwd, env=_ENV, capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    if check and completed.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{completed.stdout}\n{completed.stderr}")
    return completed


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist, built from this checkout."""
    base = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(base), str(ROOT)], base)
    [wheel] = base.glob("*.whl")
    [sdist] = base.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, dist: tuple[Path, Path]) -> Shop:
    base = tmp_path_factory.mktemp("wheel")
    wheel, sdist = dist

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], base)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, str(wheel)], base)
    core_only = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            CORE_ONLY,
        ],
        base,
    )
    _run([*pip, f"{wheel}[drf]", "pytest", "pytest-django"], base)

    directory = base / "project"
    directory.mkdir()
    _run([str(venv / "bin" / "django-admin"), "startproject", "shop", str(directory)], base)
    package = directory / "shop"
    (package / "orchestrators.py").write_text(ORCHESTRATORS)
    (package / "views.py").write_text(VIEWS)
    settings = (
        (package / "settings.py")
        .read_text()
        .replace(
            "'django.contrib.staticfiles',",
            "'django.contrib.staticfiles',\n    'rest_framework', 'orchestration', 'shop',",
        )
    )
    (package / "settings.py").write_text(settings + SETTINGS)
    urls = (package / "urls.py").read_text()
    urls = urls.replace(
        "from django.urls import path",
        "from django.urls import path\n\nfrom orchestration import views as ops\n"
        "from shop.views import CheckoutView",
    ).replace(
        "path('admin/', admin.site.urls),",
        "path('admin/', admin.site.urls),\n"
        '    path("checkout/", CheckoutView.as_view()),\n'
        '    path("metrics", ops.metrics),',
    )
    (package / "urls.py").write_text(urls)
    (directory / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = shop.settings\n")
    return Shop(directory, venv, wheel, sdist, core_only)


def test_the_wheel_and_the_sdist_hold_the_app_alone(shop: Shop) -> None:
    names = zipfile.ZipFile(shop.wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "orchestration",
        shop.wheel.name.split("-py3")[0] + ".dist-info",
    }
    assert "orchestration/py.typed" in names
    assert "orchestration/scaffold/templates/views.py-tpl" in names
    assert not [name for name in names if "/tests/" in name]
    with tarfile.open(shop.sdist) as sdist:
        top = {Path(name).parts[1] for name in sdist.getnames() if len(Path(name).parts) > 1}
    assert "orchestration" in top
    assert {"LICENSE", "CHANGELOG.md"} <= top
    assert not top & {"config", "orders", "tests", "dashboards", "manage.py"}


def test_the_core_imports_without_extras_and_the_drf_glue_names_its_extra(shop: Shop) -> None:
    assert "orchestration.drf needs the [drf] extra" in shop.core_only.stdout
    assert "pip install 'django-orchestration[drf]'" in shop.core_only.stdout


def test_an_orchestrator_and_the_drf_glue_work_in_a_fresh_project(shop: Shop) -> None:
    shop.manage("migrate", "--no-input")
    report = json.loads(shop.manage("shell", "--no-imports", "-c", SMOKE).stdout)

    result = report["result"]
    assert result["success"] is True
    assert result["data"] == {"items": 2, "reserved": True}
    assert [w["step"] for w in result["warnings"]] == ["notify_customer"]
    assert result["steps"] == [["reserve_items", "ok"], ["notify_customer", "failed"]]

    status, body = report["ok"]
    assert status == 200
    assert body["success"] is True
    assert body["data"] == {"items": 3, "reserved": True}
    assert [w["code"] for w in body["warnings"]] == ["service_unavailable"]
    status, body = report["bad"]
    assert status == 400
    assert body["error"]["code"] == "validation_failed"
    assert body["error"]["details"]["items"]
    assert (
        'orchestrator_duration_seconds_count{orchestrator="checkout",outcome="success"}'
        in (report["metrics"])
    )


def test_check_and_orchestrators_see_the_project(shop: Shop) -> None:
    assert "no issues" in shop.manage("check").stdout
    [checkout] = json.loads(shop.manage("orchestrators", "--format", "json").stdout)
    assert checkout["name"] == "checkout"
    assert [(s["name"], s["critical"]) for s in checkout["steps"]] == [
        ("reserve_items", True),
        ("notify_customer", False),
    ]


def test_generate_dashboards_without_its_extra_names_it(shop: Shop) -> None:
    completed = shop.manage("generate_dashboards", check=False)
    assert completed.returncode != 0
    assert "pip install 'django-orchestration[dashboards]'" in completed.stderr


def test_a_generated_service_passes_its_own_tests(shop: Shop) -> None:
    shop.manage(
        "generate",
        "service",
        "--no-input",
        "--app=reviews",
        "--service=SubmitReview",
        "--operations=validate_review,save_review,notify_moderators",
        "--best-effort=notify_moderators",
        "--model=Review",
    )
    assert '"reviews"' in (shop.directory / "shop" / "settings.py").read_text()
    assert 'include("reviews.urls")' in (shop.directory / "shop" / "urls.py").read_text()
    shop.manage("makemigrations", "reviews")

    completed = shop.python("-m", "pytest", "reviews", "-q", "-p", "no:cacheprovider")

    assert " passed" in completed.stdout
    assert "failed" not in completed.stdout


# -- Django 6.1 ------------------------------------------------------------------------

DJANGO_6 = "6.1"

AFTER_COMMIT = '''"""A checkout whose notification fails; the shipment booked after the commit."""

from dataclasses import dataclass
from typing import Any

from orchestration import BaseOrchestrator, OperationContext, ServiceUnavailable, Step

#: The shipments booked, in this process (Django's immediate backend runs them here).
BOOKED: list[int] = []


@dataclass(kw_only=True, eq=False)
class CheckoutContext(OperationContext):
    items: int


def reserve_items(ctx: CheckoutContext) -> CheckoutContext:
    return ctx


def notify_customer(ctx: CheckoutContext) -> CheckoutContext:
    raise ServiceUnavailable("The mail server is down.")


def book_shipment(ctx: CheckoutContext) -> CheckoutContext:
    BOOKED.append(ctx.items)
    return ctx


class Checkout(BaseOrchestrator[CheckoutContext, dict, int]):
    pipeline = (
        Step("reserve_items", reserve_items),
        Step("notify_customer", notify_customer, critical=False),
        Step("book_shipment", book_shipment, critical=False, after_commit=True, uses=("items",)),
    )

    def initialize_context(self, input: int, **kwargs: Any) -> CheckoutContext:
        return CheckoutContext(items=input, **kwargs)

    def build_result(self, ctx: CheckoutContext) -> dict:
        return {"items": ctx.items}
'''

SETTINGS_6 = """
TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
"""

SMOKE_6 = """
import json, sys
import django
from django.tasks import task_backends
from orchestration.models import QueuedStep
from shop.orchestrators import BOOKED, Checkout

result = Checkout().execute(2)
backend = type(task_backends["default"])
print(json.dumps({
    "django": django.get_version(),
    "backend": f"{backend.__module__}.{backend.__qualname__}",
    "success": result.success,
    "warnings": [w.as_dict()["step"] for w in result.warnings],
    "steps": [(s.name, s.status) for s in result.steps],
    "queued": result.queued,
    "states": list(QueuedStep.objects.values_list("step", "state")),
    "booked": BOOKED,
    "backport_imported": "django_tasks" in sys.modules,
}))
"""


def _interpreter(version: str) -> str | None:
    """A Python ``version`` that runs: on the PATH, or one of pyenv's."""
    root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "--version"], capture_output=True).returncode == 0
        ):
            return candidate
    return None


@pytest.fixture(scope="module")
def shop_on_django_6(tmp_path_factory: pytest.TempPathFactory, dist: tuple[Path, Path]) -> Shop:
    """A fresh Django 6.1 project on Python 3.12 that then installs the wheel."""
    python = _interpreter("3.12")
    if python is None:
        pytest.skip("Django 6 needs Python 3.12, and none is installed here")
    base = tmp_path_factory.mktemp("django6")
    wheel, sdist = dist
    venv = base / "venv"
    _run([python, "-m", "venv", str(venv)], base)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    _run([*pip, "--upgrade", "pip"], base)
    _run([*pip, f"Django~={DJANGO_6}.0"], base)
    _run([*pip, str(wheel)], base)

    directory = base / "project"
    directory.mkdir()
    _run([str(venv / "bin" / "django-admin"), "startproject", "shop", str(directory)], base)
    package = directory / "shop"
    (package / "orchestrators.py").write_text(AFTER_COMMIT)
    settings = (
        (package / "settings.py")
        .read_text()
        .replace(
            "'django.contrib.staticfiles',",
            "'django.contrib.staticfiles',\n    'orchestration', 'shop',",
        )
    )
    (package / "settings.py").write_text(settings + SETTINGS_6)
    return Shop(directory, venv, wheel, sdist, core_only=subprocess.CompletedProcess([], 0))


def test_on_django_6_the_wheel_keeps_django_and_runs_after_commit_steps_through_django_tasks(
    shop_on_django_6: Shop,
) -> None:
    shop = shop_on_django_6
    shop.manage("migrate", "--no-input")
    assert "no issues" in shop.manage("check").stdout
    report = json.loads(shop.manage("shell", "--no-imports", "-c", SMOKE_6).stdout)

    assert report["django"].startswith(f"{DJANGO_6}.")  # pip kept it: no downgrade
    assert report["backend"] == "django.tasks.backends.immediate.ImmediateBackend"
    assert report["success"] is True
    assert report["warnings"] == ["notify_customer"]
    assert report["steps"] == [
        ["reserve_items", "ok"],
        ["notify_customer", "failed"],
        ["book_shipment", "queued"],
    ]
    assert report["queued"] == ["book_shipment"]
    # Run by Django's immediate backend right after the commit, in this process.
    assert report["states"] == [["book_shipment", "done"]]
    assert report["booked"] == [2]
    # Installed as a dependency (no marker can test Django's version), never imported.
    assert report["backport_imported"] is False
