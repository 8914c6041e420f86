"""X-Request-ID, Server-Timing and request ids on log records."""

from __future__ import annotations

import logging

import pytest

from orchestration.logging import RequestIdFilter

pytestmark = [pytest.mark.urls("tests.orchestration.urls"), pytest.mark.django_db(transaction=True)]


def parse_server_timing(header: str) -> dict[str, float]:
    entries = {}
    for entry in header.split(","):
        name, duration = entry.strip().split(";dur=")
        entries[name] = float(duration)
    return entries


def test_every_response_gets_a_request_id_and_the_total_time(client):
    response = client.post("/parse/", {}, content_type="application/json")

    assert len(response["X-Request-ID"]) == 32
    assert set(parse_server_timing(response["Server-Timing"])) == {"total"}


def test_a_well_formed_incoming_request_id_is_kept(client):
    response = client.post("/register/", headers={"X-Request-ID": "edge-7f3a9c21"})

    assert response["X-Request-ID"] == "edge-7f3a9c21"
    assert response.json()["request_id"] == "edge-7f3a9c21"


@pytest.mark.parametrize(
    "incoming",
    ["short", "has spaces in it", "x" * 200, "<script>alert(1)</script>", "id\r\nSet-Cookie: a=b"],
)
def test_a_malformed_incoming_request_id_is_replaced(client, incoming):
    response = client.post("/parse/", headers={"X-Request-ID": incoming})

    assert response["X-Request-ID"] != incoming
    assert len(response["X-Request-ID"]) == 32


def test_server_timing_lists_the_run_and_every_step_that_ran(client):
    response = client.post("/register/")

    timing = parse_server_timing(response["Server-Timing"])
    assert list(timing) == [
        "total",
        "register_groups",
        "register_groups.validate",
        "register_groups.create",
        "register_groups.notify",
    ]
    body = response.json()
    assert timing["register_groups.create"] == pytest.approx(body["metrics"]["create"], abs=0.001)
    assert timing["total"] >= timing["register_groups"]


def test_log_records_carry_the_request_id(client, caplog):
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.WARNING, logger="orchestration"):
        response = client.post("/register/", headers={"X-Request-ID": "trace-0000abcd"})

    [warning] = [r for r in caplog.records if "notify" in r.getMessage()]
    assert warning.request_id == "trace-0000abcd"
    assert response.status_code == 201


def test_the_filter_marks_records_outside_a_request():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "msg", None, None)

    assert RequestIdFilter().filter(record)
    assert record.request_id == "-"
