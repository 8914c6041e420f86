"""Orders API traffic for the integration tests: a JWT, product ids, orders placed and cancelled."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from orders.demo import DEMO_USER
from tests.servers import http_request

DEMO_USERNAME, DEMO_PASSWORD, _ = DEMO_USER


@dataclass(frozen=True)
class Api:
    url: str
    token: str

    @classmethod
    def login(cls, url: str, username: str = DEMO_USERNAME, password: str = DEMO_PASSWORD) -> Api:
        status, _, body = http_request(
            f"{url}/api/auth/token/",
            method="POST",
            json_body={"username": username, "password": password},
        )
        assert status == 200, body
        return cls(url=url, token=json.loads(body)["access"])

    def call(self, path: str, *, method: str = "GET", json_body: object = None) -> tuple[int, dict]:
        status, _, body = http_request(
            f"{self.url}{path}",
            method=method,
            json_body=json_body,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        return status, json.loads(body) if body else {}

    def product_id(self, sku: str) -> int:
        status, page = self.call("/api/products/")
        assert status == 200, page
        return next(product["id"] for product in page["results"] if product["sku"] == sku)

    def place_order(self, product: int, payment_token: str) -> tuple[int, dict]:
        return self.call(
            "/api/orders/",
            method="POST",
            json_body={
                "items": [{"product": product, "quantity": 1}],
                "payment_token": payment_token,
            },
        )

    def place_orders(self, product: int, payment_tokens: Iterable[str]) -> list[tuple[int, dict]]:
        """Several orders at once, so that more than one worker serves them."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda token: self.place_order(product, token), payment_tokens))

    def cancel_order(self, order_id: int) -> tuple[int, dict]:
        return self.call(f"/api/orders/{order_id}/cancel/", method="POST")


def scrape(url: str, token: str | None = None) -> str:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = http_request(f"{url}/metrics", headers=headers)
    assert status == 200, body
    return body.decode()


def sample_sums(exposition: str, name: str, by: str) -> Mapping[tuple[str, ...], float]:
    """Sum of the samples called ``name``, by the comma-separated labels in ``by``."""
    labels = by.split(",")
    sums: dict[tuple[str, ...], float] = defaultdict(float)
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                sums[tuple(sample.labels.get(label, "") for label in labels)] += sample.value
    return dict(sums)
