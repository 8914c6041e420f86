"""Every sample response in the documentation is what the server answers to its request.

A sample is a ```json block right after a ``<!-- sample: name -->`` line. Its request is the
``curl`` command of the shell block before it on the page or, for samples without one, the
request written here. Keys are compared at every level (lists by their first element) and so
are the values a client decides on (``success``, ``code``, ``step``, ``status``, ``queued``,
``warnings``); ids, totals and timings may differ.
"""

from __future__ import annotations

import json
import shlex
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient, APIRequestFactory

from orchestration.testing import isolated_registry
from orders.demo import DEMO_USER, seed_demo
from tests.docs.blocks import README, Block, blocks, pages
from tests.test_readme_example import readme_example

COMPARED_VALUES = {"success", "code", "step", "status", "queued", "warnings"}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] | None = None


def samples() -> dict[str, tuple[Block, Block | None]]:
    """{name: (its json block, the shell block before it on the page, if any)}."""
    found: dict[str, tuple[Block, Block | None]] = {}
    for path in [README, *pages()]:
        shell = None
        for block in blocks(path):
            if block.lang == "sh":
                shell = block
            if block.marker and block.marker[0] == "sample":
                assert block.lang == "json", f"{block}: a sample is a json block"
                assert block.marker[1] not in found, f"{block}: sample name used twice"
                found[block.marker[1]] = (block, shell)
    return found


def curl_request(shell: Block) -> Request:
    """The last curl command of a shell block, as a request to the test client."""
    text = shell.body.replace("\\\n", " ")
    start = text.rfind("curl ")
    assert start >= 0, f"{shell}: no curl command"
    command = text[start:].replace("$BASE", "").replace('"$AUTH"', "'Authorization: Bearer -'")
    words = _first_command(command.splitlines())
    method, body, headers, path = "GET", None, {}, ""
    for index, word in enumerate(words):
        argument = words[index + 1] if index + 1 < len(words) else ""
        if word == "-X":
            method = argument
        elif word == "-d":
            body = json.loads(argument)
        elif word == "-H":
            name, _, value = argument.partition(": ")
            headers[name] = value
        elif word.startswith(("/", "http://")):
            path = "/" + word.split("://", 1)[-1].split("/", 1)[1] if "://" in word else word
    return Request(method, path, body, headers)


def _first_command(lines: list[str]) -> list[str]:
    """The words of the command the lines start with: it ends where its quotes close."""
    for end in range(1, len(lines) + 1):
        try:
            return shlex.split("\n".join(lines[:end]))
        except ValueError:
            continue
    raise AssertionError(f"unclosed quotes in {lines[0]!r}")


def compare(sample: Any, answer: Any, where: str = "$") -> Iterator[str]:
    if isinstance(sample, dict):
        if not isinstance(answer, dict):
            yield f"{where}: the server answers {type(answer).__name__}, not an object"
            return
        if set(sample) != set(answer):
            yield f"{where}: keys {sorted(sample)} in the sample, {sorted(answer)} answered"
        for key in set(sample) & set(answer):
            if key in COMPARED_VALUES and sample[key] != answer[key]:
                yield f"{where}.{key}: {sample[key]!r} in the sample, {answer[key]!r} answered"
            else:
                yield from compare(sample[key], answer[key], f"{where}.{key}")
    elif isinstance(sample, list) and isinstance(answer, list) and sample and answer:
        yield from compare(sample[0], answer[0], f"{where}[0]")


@pytest.fixture
def demo(db) -> APIClient:
    seed_demo()
    client = APIClient()
    client.force_authenticate(User.objects.get(username=DEMO_USER[0]))
    return client


def send(client: APIClient, request: Request) -> tuple[int, Any]:
    extra = {
        f"HTTP_{name.upper().replace('-', '_')}": value
        for name, value in (request.headers or {}).items()
        if name not in ("Authorization", "Content-Type")
    }
    response = client.generic(
        request.method,
        request.path,
        json.dumps(request.body) if request.body is not None else "",
        content_type="application/json",
        **extra,
    )
    return response.status_code, response.json()


@pytest.fixture
def sign_up() -> Iterator[Callable[[dict], dict]]:
    module = types.ModuleType("tests.docs.sample_sign_up")
    sys.modules[module.__name__] = module
    try:
        with isolated_registry():
            exec(compile(readme_example(), str(README), "exec"), module.__dict__)

            def post(body: dict) -> dict:
                request = APIRequestFactory().post("/signup/", body, format="json")
                return module.sign_up(request).data

            yield post
    finally:
        del sys.modules[module.__name__]


ADA = {"username": "ada", "email": "ada@example.com"}

# Samples whose request is not a curl command on their page: the sign-up of the README's
# example (the pattern page shows its envelope) and the declined card of the error page
# (step 5 of the example project's walkthrough).
WRITTEN_HERE = {
    "readme-sign-up": lambda ctx: ctx["sign_up"](ADA),
    "sign-up": lambda ctx: ctx["sign_up"](ADA),
    "sign-up-taken": lambda ctx: (ctx["sign_up"](ADA), ctx["sign_up"](ADA))[1],
    "error-envelope": lambda ctx: send(
        ctx["demo"],
        Request("POST", "/api/orders/", {"items": [{"product": 2, "quantity": 1}],
                                          "payment_token": "tok_declined"}),
    )[1],
}  # fmt: skip


def test_every_sample_has_a_request():
    for name, (block, shell) in samples().items():
        if name not in WRITTEN_HERE:
            assert shell is not None, f"{block}: no curl command before it, none written here"
            curl_request(shell)


@pytest.mark.parametrize("name", sorted(samples()))
@pytest.mark.django_db(transaction=True, reset_sequences=True)  # the pages' product ids
def test_the_sample_is_what_the_server_answers(name, demo, sign_up):
    block, shell = samples()[name]
    sample = json.loads(block.body)

    if name in WRITTEN_HERE:
        answer = WRITTEN_HERE[name]({"demo": demo, "sign_up": sign_up})
    else:
        assert shell is not None
        _, answer = send(demo, curl_request(shell))

    assert list(compare(sample, answer)) == [], f"{block}"
