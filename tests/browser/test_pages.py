"""What a person meets, in a real browser: the admin, the browsable API, Swagger UI."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.cache import cache
from playwright.sync_api import Page, expect

from orders.models import Order, Product
from orders.tests.support import place_paid_order

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "a-long-browser-password"


@pytest.fixture
def paid_order(django_user_model: Any) -> Order:
    customer = django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    keyboard = Product.objects.create(sku="KB-9", name="Browser keyboard", price="40.00", stock=5)
    return place_paid_order(customer, (keyboard, 2))


def log_in(page: Page, path: str, username: str) -> None:
    page.goto(path)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("input[type=submit], button[type=submit]").first.click()


def test_an_operator_finds_an_order_in_the_admin(page: Page, paid_order: Order, django_user_model):
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)

    log_in(page, "/admin/login/?next=/admin/orders/order/", "operator")

    expect(page).to_have_url(re.compile(r"/admin/orders/order/$"))
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("carol")
    expect(row).to_contain_text("Paid")
    expect(row).to_contain_text("80.00")
    expect(page.locator("#changelist-filter")).to_contain_text("By status")
    expect(page.locator("#searchbar")).to_be_visible()

    row.locator("th a").click()

    expect(page.locator(".inline-group")).to_contain_text("Browser keyboard")
    # Amounts and status belong to the pipelines: shown, never editable.
    expect(page.locator("input[name=total], select[name=status]")).to_have_count(0)
    expect(page.locator(".field-total")).to_contain_text("80.00")


def test_an_operator_cancels_and_refunds_an_order_from_the_admin(
    page: Page, paid_order: Order, django_user_model
):
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    log_in(page, "/admin/login/?next=/admin/orders/order/", "operator")

    page.locator(f"input[name=_selected_action][value='{paid_order.pk}']").check()
    page.select_option("select[name=action]", "cancel_and_refund")
    page.locator("button[name=index]").click()

    expect(page.locator(".messagelist")).to_contain_text(
        f"Cancelled and refunded: order #{paid_order.pk}."
    )
    expect(page.locator("#result_list tbody tr").first).to_contain_text("Cancelled")
    page.locator("#result_list tbody tr th a").first.click()
    # A read-only page: its item titled by product, and no Save or Delete button.
    expect(page.locator(".inline-group")).to_contain_text("2 x KB-9 Browser keyboard")
    expect(page.locator("input[name=_save], input[name=_continue]")).to_have_count(0)
    expect(page.locator("a.deletelink")).to_have_count(0)


def test_a_user_logs_in_to_the_browsable_api_and_sees_only_their_orders(
    page: Page, paid_order: Order, django_user_model
):
    django_user_model.objects.create_user("dave", "dave@example.com", PASSWORD)

    log_in(page, "/api-auth/login/?next=/api/orders/", "carol")

    expect(page).to_have_url(re.compile(r"/api/orders/$"))
    expect(page.locator(".response-info")).to_contain_text(f'"id": {paid_order.pk}')
    expect(page.locator(".response-info")).to_contain_text('"status": "paid"')

    page.context.clear_cookies()  # a second person on the same machine
    log_in(page, "/api-auth/login/?next=/api/orders/", "dave")

    expect(page.locator(".response-info")).to_contain_text('"count": 0')


def test_swagger_ui_sends_an_authorized_request(page: Page, paid_order: Order):
    cache.clear()  # the token endpoint's throttle
    token = page.request.post(
        "/api/auth/token/", data={"username": "carol", "password": PASSWORD}
    ).json()["access"]

    page.goto("/documentation/")
    page.click("button.authorize")
    scheme = page.locator(".modal-ux .auth-container", has_text="jwtAuth")
    scheme.locator("input").fill(token)
    scheme.locator("button.authorize").click()
    page.locator(".modal-ux button.btn-done").first.click()
    operation = page.locator(".opblock-get", has_text="/api/orders/").first
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()

    expect(operation.locator(".live-responses-table tbody .response-col_status")).to_have_text(
        "200"
    )
    expect(operation.locator(".live-responses-table")).to_contain_text('"status": "paid"')
