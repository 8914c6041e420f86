"""One vocabulary of error codes: every code the project raises is in the table of
docs/error-codes.md with the status it is raised with, and the framework's own answers
(authentication, parsing, routing) use codes from it too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("config", "orchestration", "orders")
CODE = re.compile(r"^[a-z]+(_[a-z]+)*$")


def documented_codes() -> dict[str, str]:
    """{code: status} from the error-code table of the documentation."""
    page = (ROOT / "docs" / "error-codes.md").read_text()
    table = page.split("<!-- error-codes -->")[1].split("<!-- /error-codes -->")[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \|", table, flags=re.M)
    codes = [code for code, _ in rows]
    assert len(codes) == len(set(codes)), "a code is documented twice"
    return {code: status.strip() for code, status in rows}


def _string(node: ast.AST | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
        return node.value
    return None


def _code_and_message(node: ast.AST) -> str | None:
    """The code of a ``(code, "A sentence.")`` constant such as ``KEY_REUSED``."""
    if not (isinstance(node, ast.Tuple) and len(node.elts) == 2):
        return None
    message = node.elts[1]
    if (
        isinstance(message, ast.Constant)
        and isinstance(message.value, str)
        and message.value.endswith(".")
    ):
        return _string(node.elts[0])
    return None


def module_strings(tree: ast.Module) -> dict[str, str]:
    """The module's string constants by name (``RESPONSE_INCOMPLETE = "response_incomplete"``)."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def raised_codes(tree: ast.Module) -> set[str]:
    """Codes written in source: ``code=...`` arguments (a string or a module constant),
    ``code``/``default_code`` class attributes, the first argument of ``error_body`` and
    ``(code, message)`` constants."""
    constants = module_strings(tree)
    found: set[str | None] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "code":
            if isinstance(node.value, ast.Name) and node.value.id in constants:
                found.add(_string(ast.Constant(constants[node.value.id])))
            found.add(_string(node.value))
        elif isinstance(node, ast.Assign):
            names = {getattr(target, "id", None) for target in node.targets}
            if names & {"code", "default_code"}:
                found.add(_string(node.value))
            found.add(_code_and_message(node.value))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "error_body":
            found.add(_string(node.args[0]) if node.args else None)
    return {code for code in found if code}


def project_codes() -> dict[str, Path]:
    codes: dict[str, Path] = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if {"tests", "migrations", "templates"} & set(parts):
                continue
            for code in raised_codes(ast.parse(path.read_text())):
                codes.setdefault(code, path)
    return codes


def test_every_code_the_project_raises_is_documented():
    documented = documented_codes()

    undocumented = {code: str(path) for code, path in project_codes().items()}
    for code in documented:
        undocumented.pop(code, None)

    assert undocumented == {}, "add these codes to the table in docs/error-codes.md"


def test_the_scan_finds_codes_of_every_kind():
    # Guards the scan itself: one code of each way the source spells them.
    codes = project_codes()

    assert {
        "validation_failed",  # class attribute
        "payload_too_large",  # default_code
        "out_of_stock",  # code= argument
        "idempotency_key_reused",  # (code, message) constant
        "not_found",  # error_body("not_found", ...)
        "response_incomplete",  # code=RESPONSE_INCOMPLETE
    } <= set(codes)


@pytest.fixture
def client_with_token(db) -> tuple[APIClient, str]:
    User.objects.create_user("erin", "erin@example.com", "a-long-password-for-erin")
    client = APIClient()
    token = client.post(
        "/api/auth/token/",
        {"username": "erin", "password": "a-long-password-for-erin"},
        format="json",
    ).json()["access"]
    return client, token


def answer(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.django_db
def test_framework_answers_use_documented_codes(client_with_token):
    client, token = client_with_token
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    orders = "/api/orders/"

    answers = {
        "not_authenticated": answer(client.get(orders)),
        "token_not_valid": answer(client.get(orders, HTTP_AUTHORIZATION="Bearer x.y.z")),
        "no_active_account": answer(
            client.post(
                "/api/auth/token/", {"username": "erin", "password": "wrong"}, format="json"
            )
        ),
        "parse_error": answer(client.post(orders, "{", content_type="application/json", **bearer)),
        "unsupported_media_type": answer(
            client.post(orders, "items=1", content_type="text/plain", **bearer)
        ),
        "method_not_allowed": answer(client.delete(orders, **bearer)),
        "not_acceptable": answer(client.get(orders, HTTP_ACCEPT="application/xml", **bearer)),
        "not_found": answer(client.get("/api/orders/999999/", **bearer)),
    }

    documented = documented_codes()
    for code, (status, answered) in answers.items():
        assert answered == code
        assert documented[code] == str(status), f"{code} is documented as {documented[code]}"


def _error_statuses() -> dict[str, int]:
    """{class name: HTTP status} of the typed errors (the app's and DRF's) a code is raised with."""
    from rest_framework import exceptions as drf

    import orchestration.errors

    statuses = {
        name: value.status_code
        for name, value in vars(drf).items()
        if isinstance(value, type) and issubclass(value, drf.APIException)
    }
    statuses.update(
        (name, value.status)
        for name, value in vars(orchestration.errors).items()
        if isinstance(value, type) and issubclass(value, orchestration.errors.OrchestrationError)
    )
    return statuses


def raised_statuses(tree: ast.Module, known: dict[str, int]) -> dict[str, set[int]]:
    """{code: statuses} where the source says both: ``Conflict(..., code="out_of_stock")``,
    or a class of a typed error with its own ``code`` (and ``status``, or its base's)."""
    constants = module_strings(tree)
    found: dict[str, set[int]] = {}

    def note(code_node: ast.AST, status: int | None) -> None:
        if isinstance(code_node, ast.Name) and code_node.id in constants:
            code_node = ast.Constant(constants[code_node.id])
        code = _string(code_node)
        if code and status is not None:
            found.setdefault(code, set()).add(status)

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            for keyword in node.keywords:
                if keyword.arg == "code":
                    note(keyword.value, known.get(node.func.id))
        elif isinstance(node, ast.ClassDef):
            attributes = {
                target.id: item.value
                for item in node.body
                if isinstance(item, ast.Assign)
                for target in item.targets
                if isinstance(target, ast.Name)
            }
            status_node = attributes.get("status", attributes.get("status_code"))
            if isinstance(status_node, ast.Constant) and isinstance(status_node.value, int):
                status: int | None = status_node.value
            else:
                bases = [
                    known[base.id] for base in node.bases if getattr(base, "id", None) in known
                ]
                status = bases[0] if bases else None
            for name in ("code", "default_code"):
                if name in attributes:
                    note(attributes[name], status)
    return found


def test_the_documented_status_is_the_one_the_code_raises_with():
    known = _error_statuses()
    raised: dict[str, set[int]] = {}
    for package in SOURCES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if {"tests", "migrations", "templates"} & set(path.relative_to(ROOT).parts):
                continue
            for code, statuses in raised_statuses(ast.parse(path.read_text()), known).items():
                raised.setdefault(code, set()).update(statuses)
    documented = documented_codes()

    assert {"out_of_stock", "payment_declined", "database_unavailable"} <= set(raised)
    # "none": a code only ever met as a best-effort step's warning, whatever its error's status.
    wrong = {
        code: (documented[code], sorted(statuses))
        for code, statuses in raised.items()
        if code in documented
        and documented[code] != "none"
        and documented[code] not in {str(status) for status in statuses}
    }
    assert wrong == {}, "the table in docs/error-codes.md says another status"
