"""Swagger UI and ReDoc render from local files only (no CDN): outside hosts do not resolve."""

from __future__ import annotations

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


def test_redoc_renders_from_local_assets(page: Page):
    page.goto("/redoc/")

    expect(page.locator("h1").first).to_contain_text("Orchestrated services API")
    expect(page.get_by_text("Place an order").first).to_be_attached()
