"""One user cancels orders while placing others for the same products (PostgreSQL).

Cancelling locked the order's owner along with the order, and placing an order
checks its owner's row at commit: about one such cancel in ten died in a
deadlock, answered as "database unavailable". Each request here goes through
the whole HTTP stack, in threads with connections of their own.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from orders.models import Order, Product
from orders.tests.support import order_body, place_paid_order

ROUNDS, PAIRS = 4, 4


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.django_db(transaction=True)
def test_cancels_and_creates_of_one_user_on_the_same_products_never_fail(
    django_user_model: Any,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks and one writer at a time: nothing can deadlock.")
    user = django_user_model.objects.create_user("busy", "busy@example.com", "pw")
    products = [
        Product.objects.create(sku=f"HOT-{n}", name=f"Hot {n}", price="3.00", stock=10_000)
        for n in range(3)
    ]
    lines = [(product, 1) for product in products]
    statuses: Counter[tuple[str, int]] = Counter()

    def request(kind: str, order_id: int | None, start: threading.Barrier) -> tuple[str, int]:
        client = APIClient()
        client.force_authenticate(user)
        try:
            start.wait()
            if kind == "cancel":
                response = client.post(f"/api/orders/{order_id}/cancel/", format="json")
            else:
                response = client.post("/api/orders/", order_body(*lines), format="json")
            return kind, response.status_code
        finally:
            connections.close_all()

    for _ in range(ROUNDS):
        to_cancel = [place_paid_order(user, *lines).pk for _ in range(PAIRS)]
        start = threading.Barrier(2 * PAIRS, timeout=30)
        jobs = [("cancel", pk) for pk in to_cancel] + [("create", None)] * PAIRS
        with ThreadPoolExecutor(max_workers=2 * PAIRS) as pool:
            futures = [pool.submit(request, kind, pk, start) for kind, pk in jobs]
            statuses.update(future.result() for future in futures)

    assert statuses == {("cancel", 200): ROUNDS * PAIRS, ("create", 201): ROUNDS * PAIRS}
    assert Order.objects.filter(status=Order.Status.CANCELLED).count() == ROUNDS * PAIRS
    stock = {product.stock for product in Product.objects.all()}
    assert stock == {10_000 - ROUNDS * PAIRS}
