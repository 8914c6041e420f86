"""The README's example is real code: run it, through DRF, against the test database."""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from rest_framework.test import APIRequestFactory

from orchestration.testing import isolated_registry

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_python_blocks() -> list[str]:
    pattern = README.read_text().split("<!-- section: pattern -->")[1].split("<!-- /section")[0]
    return re.findall(r"```python\n(.*?)```", pattern, flags=re.S)


@pytest.fixture(scope="module")
def example() -> Iterator[types.ModuleType]:
    module = types.ModuleType("tests.readme_example")
    sys.modules[module.__name__] = module  # dataclasses resolve annotations through it
    try:
        with isolated_registry():
            exec(compile(readme_python_blocks()[0], str(README), "exec"), module.__dict__)
            yield module
    finally:
        del sys.modules[module.__name__]


def post_sign_up(example: types.ModuleType, body: dict) -> dict:
    request = APIRequestFactory().post("/signup/", body, format="json")
    response = example.sign_up(request)
    return {"status": response.status_code, **response.data}


@pytest.mark.django_db(transaction=True)
def test_the_example_signs_up_and_sends_the_welcome_after_commit(example):
    body = post_sign_up(example, {"username": "ada", "email": "ada@example.com"})

    assert body["status"] == 201
    assert body["data"] == {"id": User.objects.get(username="ada").pk, "username": "ada"}
    assert set(body["metrics"]) == {"validate_sign_up", "create_account", "send_welcome"}
    assert [message.to for message in mail.outbox] == [["ada@example.com"]]


@pytest.mark.django_db
def test_the_example_answers_409_for_a_taken_username(example):
    User.objects.create_user("ada")

    body = post_sign_up(example, {"username": "ada", "email": "ada@example.com"})

    assert body["status"] == 409
    assert body["error"]["code"] == "username_taken"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_the_testing_snippet_runs(example):
    from orchestration.testing import make_context, run_step

    namespace = {**example.__dict__, "make_context": make_context, "run_step": run_step}
    exec(readme_python_blocks()[1], namespace)

    assert User.objects.filter(username="ada").exists()


@pytest.mark.django_db
def test_the_example_checks_its_input_in_the_first_step(example):
    body = post_sign_up(example, {"username": "ada", "email": "not an address"})

    assert body["status"] == 400
    assert (body["error"]["step"], body["error"]["code"]) == (
        "validate_sign_up",
        "validation_failed",
    )
    assert "email" in body["error"]["details"]
    assert not User.objects.filter(username="ada").exists()
