"""The README's example is real code: run it, through DRF, against the test database, and
its sample response is what the server answers."""

from __future__ import annotations

import json
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core import mail
from rest_framework.test import APIRequestFactory

from orchestration.testing import isolated_registry, run_queued_steps

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_example() -> str:
    section = README.read_text().split("<!-- section: example -->")[1].split("<!-- /section")[0]
    [block] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return block


def readme_sample() -> dict:
    after = README.read_text().split("<!-- sample: readme-sign-up -->")[1]
    return json.loads(re.search(r"```json\n(.*?)```", after, flags=re.S)[1])


@pytest.fixture(scope="module")
def example() -> Iterator[types.ModuleType]:
    module = types.ModuleType("tests.readme_example")
    sys.modules[module.__name__] = module  # dataclasses resolve annotations through it
    try:
        with isolated_registry():
            exec(compile(readme_example(), str(README), "exec"), module.__dict__)
            yield module
    finally:
        del sys.modules[module.__name__]


def post_sign_up(example: types.ModuleType, body: dict) -> dict:
    request = APIRequestFactory().post("/signup/", body, format="json")
    response = example.sign_up(request)
    return {"status": response.status_code, **response.data}


@pytest.mark.django_db(transaction=True)
def test_the_example_signs_up_and_queues_the_welcome_for_a_worker(example):
    body = post_sign_up(example, {"username": "ada", "email": "ada@example.com"})

    assert body["status"] == 201
    assert body["data"] == {"id": User.objects.get(username="ada").pk, "username": "ada"}
    assert set(body["metrics"]) == {"validate_sign_up", "create_account"}
    assert body["queued"] == ["send_welcome"]
    assert mail.outbox == []

    assert run_queued_steps() == {"send_welcome": "ok"}
    assert [message.to for message in mail.outbox] == [["ada@example.com"]]


@pytest.mark.django_db
def test_the_example_answers_409_for_a_taken_username(example):
    User.objects.create_user("ada")

    body = post_sign_up(example, {"username": "ada", "email": "ada@example.com"})

    assert body["status"] == 409
    assert body["error"]["code"] == "username_taken"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_the_sample_response_is_what_the_example_answers(example):
    body = post_sign_up(example, {"username": "ada", "email": "ada@example.com"})
    sample = readme_sample()

    assert body.pop("status") == 201
    assert set(body) == set(sample)
    assert set(body["data"]) == set(sample["data"])
    assert set(body["metrics"]) == set(sample["metrics"])
    assert (body["success"], body["warnings"], body["queued"]) == (
        sample["success"],
        sample["warnings"],
        sample["queued"],
    )


def test_the_readme_stays_short():
    assert len(README.read_text().splitlines()) <= 250


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
