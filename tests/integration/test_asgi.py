"""The quote endpoints served over ASGI by uvicorn: the async view awaits its pipeline."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.servers import app_env, http_request, running_uvicorn

pytestmark = pytest.mark.integration

CONCURRENT_REQUESTS = 8


def test_the_quote_endpoints_answer_under_uvicorn(database_url: str, tmp_path: Path) -> None:
    env = app_env(database_url=database_url)

    with running_uvicorn(env, log_dir=tmp_path) as server:
        _, _, catalogue = http_request(f"{server.url}/api/products/")
        products = json.loads(catalogue)["results"][:2]
        body = {
            "items": [{"product": product["id"], "quantity": 2} for product in products],
            "country": "FR",
        }
        answers = {
            path: http_request(f"{server.url}{path}", method="POST", json_body=body)
            for path in ("/api/orders/quote/", "/api/orders/quote/async/")
        }
        with ThreadPoolExecutor(CONCURRENT_REQUESTS) as clients:
            together = list(
                clients.map(
                    lambda _: http_request(
                        f"{server.url}/api/orders/quote/async/", method="POST", json_body=body
                    ),
                    range(CONCURRENT_REQUESTS),
                )
            )
        invalid = http_request(
            f"{server.url}/api/orders/quote/async/",
            method="POST",
            json_body={**body, "country": "ZZ"},
        )

    (sync_status, _, sync_body), (async_status, async_headers, async_body) = answers.values()
    assert (sync_status, async_status) == (200, 200), server.log()
    assert json.loads(async_body)["data"] == json.loads(sync_body)["data"]
    assert "quote_async.quotes;dur=" in async_headers["Server-Timing"]
    assert async_headers["X-Request-ID"]
    assert [status for status, _, _ in together] == [200] * CONCURRENT_REQUESTS
    request_ids = {headers["X-Request-ID"] for _, headers, _ in together}
    assert len(request_ids) == CONCURRENT_REQUESTS
    assert invalid[0] == 400
    assert json.loads(invalid[2])["error"]["code"] == "validation_failed"
