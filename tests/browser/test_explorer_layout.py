"""The run explorer's pages as a person sees them at 1400 and 1000 px: every column of the
lists in view, and diagrams whose labels neither overlap nor shrink below readable."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from orchestration.models import QueuedStep, RunRecord
from tests.browser.explorer import log_in, record_runs

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = (1400, 1000)

#: The smallest text a diagram may render, in CSS pixels.
READABLE_PX = 12

LAST_ERROR = (
    "email_unavailable: The email could not be sent: ConnectionRefusedError. The relay "
    "hands the step to a worker again after 30 s."
)


@pytest.fixture
def runs(django_user_model: Any, settings: Any) -> dict[str, Any]:
    recorded = record_runs(django_user_model, settings)
    # One confirmation email the worker could not send: it waits with its last error.
    entry = QueuedStep.objects.filter(step="send_confirmation").first()
    assert entry is not None
    entry.attempts, entry.last_error = 1, LAST_ERROR
    entry.save(update_fields=["attempts", "last_error"])
    return recorded


def at_width(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


def overflows(page: Page, selector: str) -> bool:
    """Whether the element scrolls sideways or reaches past the window's right edge."""
    return page.eval_on_selector(
        selector,
        "element => element.scrollWidth > element.clientWidth + 1"
        " || element.getBoundingClientRect().right > window.innerWidth + 1",
    )


def column_in_view(page: Page, column: str) -> None:
    header = page.locator(f"#result_list thead th.column-{column}")
    expect(header).to_be_visible()
    box = header.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= page.viewport_size["width"], column


@pytest.mark.parametrize("width", WIDTHS)
def test_the_run_records_list_shows_every_column(page: Page, runs: Any, width: int) -> None:
    at_width(page, width)
    log_in(page, "/admin/orchestration/runrecord/")

    for column in ("when", "orchestrator", "outcome_label", "failure", "duration"):
        column_in_view(page, column)
    for column in ("user_label", "request"):
        column_in_view(page, column)
    assert not overflows(page, "#changelist .results")
    assert not overflows(page, "html")
    rows = page.locator("#result_list tbody tr")
    expect(rows.first.locator("td.field-user_label")).to_have_text("erin")
    expect(page.locator("#result_list")).not_to_contain_text("#")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_queued_steps_list_keeps_the_last_error_in_view(
    page: Page, runs: Any, width: int
) -> None:
    at_width(page, width)
    log_in(page, "/admin/orchestration/queuedstep/?state__exact=queued")

    column_in_view(page, "error")
    assert not overflows(page, "#changelist .results")
    error = page.locator("#result_list td.field-error", has_text="email_unavailable").first
    expect(error).to_be_visible()
    expect(error).to_contain_text("could not be sent")


#: Every label of every diagram on the page, as boxes: each step's box, each edge's label
#: and each group's title. Boxes that touch by a pixel (a border) do not count.
LABEL_BOXES = """
() => [...document.querySelectorAll("pre.mermaid svg")].map(svg => {
  const boxes = [];
  const add = (kind, element) => {
    const text = element.textContent.trim();
    const box = element.getBoundingClientRect();
    if (text && box.width > 0 && box.height > 0) {
      boxes.push({kind, text, left: box.left, top: box.top, right: box.right,
                  bottom: box.bottom});
    }
  };
  svg.querySelectorAll("g.node").forEach(node => add("node", node));
  svg.querySelectorAll("g.edgeLabel").forEach(label => add("edge label", label));
  svg.querySelectorAll("g.cluster-label").forEach(label => add("group title", label));
  return boxes;
})
"""

#: The rendered size of each diagram text: its computed font size times the SVG's scale.
FONT_SIZES = """
() => [...document.querySelectorAll("pre.mermaid svg")].flatMap(svg => {
  const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
  return [...svg.querySelectorAll(".nodeLabel, .edgeLabel, .cluster-label")]
    .filter(label => label.textContent.trim())
    .map(label => ({text: label.textContent.trim(),
                    px: parseFloat(getComputedStyle(label).fontSize) * scale}));
})
"""


def overlapping(boxes: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs = []
    for index, first in enumerate(boxes):
        for second in boxes[index + 1 :]:
            width = min(first["right"], second["right"]) - max(first["left"], second["left"])
            height = min(first["bottom"], second["bottom"]) - max(first["top"], second["top"])
            if width > 1 and height > 1:
                pairs.append((first["text"], second["text"]))
    return pairs


def assert_diagrams_readable(page: Page) -> None:
    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")
    diagrams = page.evaluate(LABEL_BOXES)
    assert diagrams
    for boxes in diagrams:
        assert len(boxes) > 3
        assert overlapping(boxes) == []
    sizes = page.evaluate(FONT_SIZES)
    assert sizes
    small = [(size["text"], round(size["px"], 1)) for size in sizes if size["px"] < READABLE_PX]
    assert small == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_run_page_diagram_has_no_overlapping_labels_and_readable_text(
    page: Page, runs: Any, width: int
) -> None:
    record = RunRecord.objects.get(error_code="payment_declined")
    at_width(page, width)
    log_in(page, f"/admin/orchestration/runrecord/{record.pk}/change/")

    assert_diagrams_readable(page)
    # The retry policy that a loop's label used to draw under the compensation's box.
    charge = page.locator("svg g.node", has_text="charge_payment")
    expect(charge).to_contain_text("retried up to 3 attempts on ServiceUnavailable")
    expect(page.locator("svg g.node", has_text="undo: refund_charge")).to_have_count(1)
    assert not overflows(page, "html")


def test_every_pipeline_on_the_orchestrators_page_is_drawn_readably(page: Page, runs: Any) -> None:
    at_width(page, 1400)
    log_in(page, "/admin/orchestration/runrecord/orchestrators/")

    assert_diagrams_readable(page)
    assert page.locator("pre.mermaid svg").count() >= 3
