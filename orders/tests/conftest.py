from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from orders.models import Product
from orders.payments import FakeGateway, _load_gateway, get_gateway
from orders.tests.support import PASSWORD, obtain_token


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    # The real hasher is slow on purpose; these tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_gateway(settings: Any, tmp_path: Any) -> Iterator[None]:
    """Every test starts with empty fake books."""
    settings.FAKE_GATEWAY_BOOKS = str(tmp_path / "gateway-books.sqlite3")
    _load_gateway.cache_clear()
    yield
    _load_gateway.cache_clear()


@pytest.fixture
def gateway() -> FakeGateway:
    found = get_gateway()
    assert isinstance(found, FakeGateway)
    return found


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("alice", "alice@example.com", PASSWORD)


@pytest.fixture
def other_user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("bob", "bob@example.com", PASSWORD)


@pytest.fixture
def make_product(db: None) -> Callable[..., Product]:
    counter = iter(range(1, 10_000))

    def make(
        *, price: str = "10.00", stock: int = 10, active: bool = True, name: str = ""
    ) -> Product:
        number = next(counter)
        return Product.objects.create(
            sku=f"SKU-{number:04d}",
            name=name or f"Product {number}",
            price=Decimal(price),
            stock=stock,
            active=active,
        )

    return make


@pytest.fixture
def keyboard(make_product: Callable[..., Product]) -> Product:
    return make_product(name="Keyboard", price="89.00", stock=5)


@pytest.fixture
def cable(make_product: Callable[..., Product]) -> Product:
    return make_product(name="Cable", price="9.99", stock=100)


@pytest.fixture
def api_client(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {obtain_token(client, user.username)}")
    return client


@pytest.fixture
def other_client(other_user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {obtain_token(client, other_user.username)}")
    return client
