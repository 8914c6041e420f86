from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from orders.demo import DEMO_PRODUCTS, DEMO_USER
from orders.models import Product
from orders.tests.support import obtain_token

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_seed_demo_is_idempotent(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEBUG = True
    monkeypatch.delenv("PORT", raising=False)

    first = seed()
    Product.objects.filter(sku=DEMO_PRODUCTS[0][0]).update(stock=1)
    second = seed()

    assert "created product KB-001" in first
    assert not any(line.startswith("created") for line in second.splitlines())
    assert Product.objects.count() == len(DEMO_PRODUCTS)
    assert get_user_model().objects.count() == 2
    assert Product.objects.get(sku="KB-001").stock == 1
    assert "curl -s -X POST http://127.0.0.1:8000/api/auth/token/" in second


def test_seed_demo_prints_the_port_the_server_listens_on(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = True
    monkeypatch.setenv("PORT", "8765")

    out = seed()

    assert "curl -s -X POST http://127.0.0.1:8765/api/auth/token/" in out
    assert "http://127.0.0.1:8765/admin/" in out
    assert "8000" not in out


def test_seed_demo_refuses_a_port_that_is_not_a_number(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = True
    monkeypatch.setenv("PORT", "eighty")

    with pytest.raises(CommandError, match="PORT must be a TCP port number"):
        seed()


def test_the_demo_user_can_get_a_token(settings: Any) -> None:
    settings.DEBUG = True
    seed()

    assert obtain_token(APIClient(), DEMO_USER[0], DEMO_USER[1])


def test_seed_demo_refuses_to_run_without_debug(settings: Any) -> None:
    settings.DEBUG = False

    with pytest.raises(CommandError, match="DJANGO_DEBUG=1"):
        seed()
    assert Product.objects.count() == 0
