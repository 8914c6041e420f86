"""One vocabulary of error codes: every code the project raises is in the table of
docs/error-codes.md,
and the framework's own answers (authentication, parsing, routing) use codes from it too."""

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
