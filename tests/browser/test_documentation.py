"""Swagger UI and ReDoc render from local files only (no CDN): outside hosts do not resolve."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.django_db(transaction=True)


def test_swagger_ui_renders_every_operation_from_local_assets(page: Page):
    page.goto("/documentation/")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Orchestrated services API")
    paths = page.locator(".opblock-summary-path")
    expect(paths.first).to_be_visible()
    rendered = set(paths.all_inner_texts())
    assert {"/api/auth/token/", "/api/orders/", "/api/orders/{id}/cancel/"} <= rendered


def test_the_create_order_description_lists_its_pipeline(page: Page):
    page.goto("/documentation/")
    operation = page.locator(".opblock-post", has_text="/api/orders/").first

    operation.locator(".opblock-summary").click()

    description = operation.locator(".opblock-description-wrapper").first
    expect(description).to_contain_text("charge_payment")
    expect(description).to_contain_text("best effort")
    # No Mermaid source shown as text: a link to the diagram the run explorer draws.
    expect(description).not_to_contain_text("flowchart")
    expect(description).not_to_contain_text("classDef")
    link = description.get_by_role("link", name="create_order in the run explorer")
    expect(link).to_have_attribute(
        "href", "/admin/orchestration/runrecord/orchestrators/#create_order"
    )


def test_redoc_renders_from_local_assets(page: Page):
    page.goto("/redoc/")

    expect(page.locator("h1").first).to_contain_text("Orchestrated services API")
    expect(page.get_by_text("Place an order").first).to_be_attached()


def test_redoc_asks_no_other_host_for_anything(page: Page):
    """Fonts and the vendor's logo would come from CDNs; offline, the page must not need them.

    The bundle draws its footer logo from a CDN whatever the options: the page's content
    security policy makes the browser refuse that request itself, so it never leaves."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    failures: dict[str, str | None] = {}
    page.on("requestfailed", lambda request: failures.update({request.url: request.failure}))
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto("/redoc/")
    expect(page.get_by_text("Place an order").first).to_be_attached()
    expect(page.get_by_text("API docs by Redocly")).to_be_attached()  # the footer and its logo
    page.wait_for_load_state("networkidle")

    outside = [
        url
        for url in requested
        if not url.startswith(("data:", "blob:")) and urlsplit(url).hostname != "localhost"
    ]
    # Playwright names the browser's own refusal "csp": the request never left the page.
    assert {url: failures.get(url) for url in outside} == dict.fromkeys(outside, "csp")
    assert problems == []


def test_every_page_has_a_favicon(page: Page):
    response = page.request.get("/favicon.ico")

    assert response.status == 200
    assert response.headers["content-type"] == "image/vnd.microsoft.icon"
    assert response.body()[:4] == b"\x00\x00\x01\x00"  # an icon resource
