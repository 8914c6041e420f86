"""PromQL: the metric names, the expression helpers and the scope a panel covers.

Conventions, shared by the dashboards and the rules:

* rates use ``$__rate_interval`` in dashboards (Grafana picks a window that
  holds at least four scrapes) and ``5m`` in rules;
* histogram buckets are summed ``by (le, ...)`` before ``histogram_quantile``,
  so quantiles cover every worker and instance;
* ratios divide sums (failures over runs of all instances), so they are
  weighted by traffic rather than averaged;
* an idle system shows 0, not NaN or "no data": see ``ratio``, ``quantile``
  and ``zero_filled``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

RATE = "$__rate_interval"
RULE_WINDOW = "5m"

FAILED = 'outcome="failure"'
CRITICAL = 'critical="true"'
BEST_EFFORT = 'critical="false"'
JOB = 'job=~"$job"'

RUNS = "orchestrator_duration_seconds_count"
RUN_SECONDS = "orchestrator_duration_seconds"
STEP_SECONDS = "orchestrator_step_duration_seconds"
GROUP_SECONDS = "orchestrator_group_duration_seconds"
STEP_FAILURES = "orchestrator_step_failures_total"
STEP_RETRIES = "orchestrator_step_retries_total"
STEP_SKIPPED = "orchestrator_step_skipped_total"
COMPENSATIONS = "orchestrator_compensations_total"
IN_PROGRESS = "orchestrator_in_progress"
HTTP_REQUESTS = "django_http_requests_total_by_view_transport_method_total"
HTTP_RESPONSES = "django_http_responses_total_by_status_view_method_total"
HTTP_SECONDS = "django_http_requests_latency_seconds_by_view_method"
DB_QUERIES = "django_db_execute_total"
DB_ERRORS = "django_db_errors_total"


def selector(metric: str, *matchers: str) -> str:
    """``metric{a="b", ...}``; matchers are written out (``'job=~"$job"'``)."""
    return f"{metric}{{{', '.join(matchers)}}}" if matchers else metric


def rate_sum(metric: str, matchers: Sequence[str], labels: Sequence[str], window: str) -> str:
    """``sum by (labels) (rate(metric{matchers}[window]))``."""
    return aggregate("sum", labels, f"rate({selector(metric, *matchers)}[{window}])")


def aggregate(operator: str, labels: Sequence[str], expr: str) -> str:
    """``operator by (labels) (expr)``, or ``operator(expr)`` without labels."""
    return f"{operator} by ({', '.join(labels)}) ({expr})" if labels else f"{operator}({expr})"


def ratio(numerator: str, denominator: str) -> str:
    """``numerator / denominator``, 0 where the denominator is 0.

    Dividing by ``denominator > 0`` drops the idle series (0/0 would be NaN)
    and ``or denominator * 0`` puts them back as 0; a series with traffic but
    no numerator (no failure ever counted) also comes out as 0. Both sides
    must be aggregated by the same labels.
    """
    return f"({numerator} / ({denominator} > 0)) or ({denominator} * 0)"


def quantile(q: float, buckets: str, count: str) -> str:
    """``histogram_quantile`` over summed bucket rates, 0 where nothing was observed.

    ``buckets`` is aggregated by ``le`` and the grouping labels, ``count`` by
    the grouping labels alone. ``histogram_quantile`` answers NaN for an
    empty histogram; ``>= 0`` drops NaN and ``or count * 0`` puts a 0 there.
    """
    return f"(histogram_quantile({q}, {buckets}) >= 0) or ({count} * 0)"


def zero_filled(expr: str, filler: str) -> str:
    """``expr``, plus a 0 series for each series of ``filler`` that ``expr`` lacks.

    Counters that appear only on first use (failures, compensations) are
    absent, not 0, until then; ``filler`` names the series that should read 0.
    """
    return f"{expr} or ({filler} * 0)"


def one_of(names: Iterable[str]) -> str:
    return "|".join(names)


def or_zero(expr: str) -> str:
    """A single value that reads 0 before the first series exists."""
    return f"{expr} or vector(0)"


@dataclass(frozen=True)
class Scope:
    """Which series a panel covers (``matchers``) and how it splits them (``by``).

    One orchestrator's dashboard and the overview ask the same questions of
    different series: the panel builders take a scope instead of repeating
    the queries with other matchers.
    """

    matchers: tuple[str, ...]
    by: tuple[str, ...] = ()

    def where(self, *matchers: str) -> Scope:
        return replace(self, matchers=(*self.matchers, *matchers))

    def split(self, *labels: str) -> Scope:
        return replace(self, by=labels)

    def rate(self, metric: str, *leading: str) -> str:
        """``sum by (leading, by) (rate(metric{matchers}[$__rate_interval]))``."""
        return rate_sum(metric, self.matchers, (*leading, *self.by), RATE)

    def sum(self, metric: str) -> str:
        """``sum by (by) (metric{matchers})``, for a gauge."""
        return aggregate("sum", self.by, selector(metric, *self.matchers))

    def legend(self, alone: str = "") -> str:
        """The series name: the split labels, or ``alone`` for an unsplit scope."""
        return " ".join(f"{{{{{label}}}}}" for label in self.by) or alone
