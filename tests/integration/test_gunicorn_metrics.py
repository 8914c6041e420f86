"""Under gunicorn with several workers, /metrics counts every worker's runs exactly once."""

from __future__ import annotations

import re

import pytest

from tests.integration.traffic import Api, sample_sums, scrape
from tests.servers import app_env, http_request, running_gunicorn

pytestmark = pytest.mark.integration

METRICS_TOKEN = "integration-metrics-token"
SUCCEEDING, DECLINED = 9, 5


def test_metrics_are_summed_over_all_workers(database_url: str, tmp_path) -> None:
    env = app_env(database_url=database_url, METRICS_TOKEN=METRICS_TOKEN)
    # Each access log line names the worker (pid) that served the request.
    with running_gunicorn(
        env,
        workers=3,
        log_dir=tmp_path,
        extra_args=["--access-logformat", "%(p)s %(m)s %(U)s %(s)s"],
    ) as server:
        api = Api.login(server.url)
        product = api.product_id("CB-004")
        tokens = ["tok_visa"] * SUCCEEDING + ["tok_declined"] * DECLINED
        responses = api.place_orders(product, tokens)
        statuses = [status for status, _ in responses]
        assert sorted(statuses) == sorted([201] * SUCCEEDING + [402] * DECLINED), responses

        denied, _, _ = http_request(f"{server.url}/metrics")
        exposition = scrape(server.url, METRICS_TOKEN)
        log = server.log()

    assert denied == 401
    runs = sample_sums(exposition, "orchestrator_duration_seconds_count", "orchestrator,outcome")
    assert runs[("create_order", "success")] == SUCCEEDING
    assert runs[("create_order", "failure")] == DECLINED
    failures = sample_sums(exposition, "orchestrator_step_failures_total", "step,code")
    assert failures == {("charge_payment", "payment_declined"): DECLINED}
    in_progress = sample_sums(exposition, "orchestrator_in_progress", "orchestrator")
    assert in_progress == {("create_order",): 0}
    # django-prometheus's metrics are aggregated the same way.
    responses = sample_sums(
        exposition, "django_http_responses_total_by_status_view_method_total", "view,method,status"
    )
    assert responses[("orders:order-list", "POST", "201")] == SUCCEEDING
    assert responses[("orders:order-list", "POST", "402")] == DECLINED
    assert sum(sample_sums(exposition, "django_db_execute_total", "alias").values()) > 0

    workers = set(re.findall(r"^<(\d+)> POST /api/orders/ ", log, flags=re.MULTILINE))
    assert len(workers) >= 2, "every order was served by one worker; the sum proves nothing"
