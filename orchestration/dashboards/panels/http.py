"""Requests and database queries, from django-prometheus's metrics."""

from __future__ import annotations

from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel

from orchestration.dashboards.promql import (
    DB_ERRORS,
    DB_QUERIES,
    HTTP_REQUESTS,
    HTTP_RESPONSES,
    HTTP_SECONDS,
    Scope,
    quantile,
    ratio,
    zero_filled,
)
from orchestration.dashboards.widgets import Query, timeseries


def requests(service: Scope) -> TimeseriesPanel:
    views = service.split("view")
    return timeseries(
        "Requests",
        "HTTP requests per second, by view.",
        "reqps",
        [Query(views.rate(HTTP_REQUESTS), views.legend())],
    )


def server_errors(service: Scope) -> TimeseriesPanel:
    views = service.split("view")
    errors = views.where('status=~"5.."').rate(HTTP_RESPONSES)
    return timeseries(
        "Server errors",
        "Share of responses with a 5xx status, by view.",
        "percentunit",
        [Query(ratio(errors, views.rate(HTTP_RESPONSES)), views.legend())],
    )


def request_latency(service: Scope) -> TimeseriesPanel:
    views = service.split("view")
    buckets = views.rate(f"{HTTP_SECONDS}_bucket", "le")
    return timeseries(
        "Request latency p95",
        "95th percentile of the request's duration, by view.",
        "s",
        [Query(quantile(0.95, buckets, views.rate(f"{HTTP_SECONDS}_count")), views.legend())],
    )


def responses_by_status(service: Scope) -> TimeseriesPanel:
    statuses = service.split("status")
    return timeseries(
        "Responses by status",
        "HTTP responses per second, by status code.",
        "reqps",
        [Query(statuses.rate(HTTP_RESPONSES), statuses.legend())],
    )


def database_queries(service: Scope) -> TimeseriesPanel:
    aliases = service.split("alias")
    queries = aliases.rate(DB_QUERIES)
    return timeseries(
        "Database queries",
        "Queries and query errors per second, by database alias.",
        "reqps",
        [
            Query(queries, f"{aliases.legend()} queries"),
            Query(zero_filled(aliases.rate(DB_ERRORS), queries), f"{aliases.legend()} errors"),
        ],
        width=24,
    )
