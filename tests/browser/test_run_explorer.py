"""The run explorer in a real browser: a declined order's run drawn over its pipeline."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import RunRecord
from orchestration.testing import run_queued_steps
from orders.models import Order
from tests.browser.explorer import log_in, record_runs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runs(django_user_model: Any, settings: Any) -> dict[str, Any]:
    return record_runs(django_user_model, settings)


def diagram_node(page: Page, status: str, step: str):
    """The node of ``step`` drawn in the style of ``status``; its text is the step's
    name, then the status in words (then time, attempts, error code)."""
    words = status.replace("_", " ")
    return page.locator(f"svg g.node.{status}", has_text=re.compile(rf"^{step}{words}"))


def test_the_run_of_a_declined_order_shows_where_it_failed(
    page: Page, runs: dict[str, Any], tmp_path: Path
):
    log_in(page, "/admin/orchestration/runrecord/?outcome__exact=failure")
    expect(page.locator("#changelist-filter")).to_contain_text("By failing step")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)

    page.locator("#changelist-filter a", has_text="payment_declined").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("charge_payment")
    rows.first.locator("th a").click()

    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")
    expect(page.locator("#failing-step")).to_have_text("charge_payment")
    # On the diagram: the failing step in the failure style, every later step not run.
    expect(diagram_node(page, "failed", "charge_payment")).to_have_count(1)
    for step in ("mark_paid", "send_confirmation", "track_analytics"):
        expect(diagram_node(page, "not_run", step)).to_have_count(1)
    for step in ("validate_order", "check_permissions", "reserve_stock", "create_order"):
        expect(diagram_node(page, "ok", step)).to_have_count(1)
    expect(diagram_node(page, "skipped", "claim_idempotency_key")).to_have_count(1)
    expect(page.locator("svg g.node.failed")).to_have_count(1)
    # And in the table, with the time per step.
    failing = page.locator("tr[data-step=charge_payment]")
    expect(failing.locator("td.status")).to_have_text("failed")
    expect(failing).to_contain_text("payment_declined")
    expect(page.locator("tr[data-step=mark_paid] td.status")).to_have_text("not_run")
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)


def test_the_orchestrators_page_shows_each_pipeline_and_its_failure_rates(
    page: Page, runs: dict[str, Any], tmp_path: Path
):
    log_in(page, "/admin/orchestration/runrecord/orchestrators/")

    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")
    create = page.locator("section#create_order")
    expect(create.locator(".run-count")).to_contain_text(
        "About 4 runs in the last 7 days, estimated from 4 recorded runs."
    )
    expect(page.locator("section#quote .run-count")).to_contain_text(
        "No recorded runs in the last 7 days"
    )
    charge = create.locator("tr[data-step=charge_payment]")
    expect(charge.locator("td").nth(2)).to_have_text("2")
    expect(charge.locator("td.rate")).to_have_text("50.00 %")
    expect(create.locator("tr[data-step=validate_order] td.rate")).to_have_text("0.00 %")
    # 9 steps, start, commit, done and the compensation of charge_payment.
    expect(create.locator("svg g.node")).to_have_count(13)
    expect(page.locator("section#cancel_order svg")).to_have_count(1)
    page.screenshot(path=str(tmp_path / "orchestrators.png"), full_page=True)


def test_an_order_links_to_its_runs(page: Page, runs: dict[str, Any]):
    cancelled: Order = runs["cancelled"]
    log_in(page, f"/admin/orders/order/{cancelled.pk}/change/")

    page.locator(".field-runs a").click()

    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(2)  # placed, then cancelled
    expect(rows.nth(0)).to_contain_text("cancel_order")
    expect(rows.nth(1)).to_contain_text("create_order")
    assert RunRecord.objects.filter(subject_id=str(runs["kept"].pk)).count() == 1


def test_a_placed_orders_run_shows_what_the_worker_made_of_its_after_commit_steps(
    page: Page, runs: dict[str, Any]
):
    record = RunRecord.objects.get(orchestrator="create_order", subject_id=str(runs["kept"].pk))
    path = f"/admin/orchestration/runrecord/{record.pk}/change/"
    after_commit = ("send_confirmation", "track_analytics")
    assert {s["name"]: s["status"] for s in record.steps if s["name"] in after_commit} == {
        "send_confirmation": "queued",
        "track_analytics": "queued",
    }

    log_in(page, path)
    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")
    for step in after_commit:
        expect(diagram_node(page, "queued", step)).to_have_count(1)
        state = page.locator(f"#queued-steps tr[data-queued-step={step}] td.state")
        expect(state).to_have_text("queued")

    run_queued_steps()  # the task worker, in this process
    page.reload()

    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")
    for step in after_commit:
        expect(diagram_node(page, "ok", step)).to_have_count(1)
        row = page.locator(f"#queued-steps tr[data-queued-step={step}]")
        expect(row.locator("td.state")).to_have_text("done")
        expect(row.locator("td.attempts")).to_have_text("1")
    expect(page.locator("svg g.node.queued")).to_have_count(0)
