"""The run explorer's test data and log-in, shared by the browser tests of its pages."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from orders.models import Product
from orders.orchestrators import CancelOrder, CreateOrder
from orders.tests.support import order_body, place_paid_order
from orders.types import CancelOrderInput, CreateOrderInput

PASSWORD = "a-long-browser-password"


def record_runs(django_user_model: Any, settings: Any) -> dict[str, Any]:
    """Two placed orders (one cancelled), a declined card and a processor outage, every
    run recorded; a customer ``erin`` and a superuser ``operator``."""
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_SAMPLE_RATE": 1.0}
    customer = django_user_model.objects.create_user("erin", "erin@example.com", PASSWORD)
    django_user_model.objects.create_superuser("operator", "ops@example.com", PASSWORD)
    lamp = Product.objects.create(sku="LAMP-1", name="Desk lamp", price="30.00", stock=10)
    kept = place_paid_order(customer, (lamp, 1))
    cancelled = place_paid_order(customer, (lamp, 2))
    assert CancelOrder().execute(CancelOrderInput(order_id=cancelled.pk), user=customer).success
    declined = CreateOrder().execute(
        CreateOrderInput(data=order_body((lamp, 1), token="tok_declined")), user=customer
    )
    assert declined.error is not None
    assert declined.error.code == "payment_declined"
    outage = CreateOrder().execute(
        CreateOrderInput(data=order_body((lamp, 1), token="tok_unavailable")), user=customer
    )
    assert outage.error is not None
    assert outage.error.code == "payment_gateway_unavailable"
    return {"kept": kept, "cancelled": cancelled, "declined": declined}


def log_in(page: Page, path: str) -> None:
    page.goto(f"/admin/login/?next={path}")
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", PASSWORD)
    page.locator("input[type=submit]").click()
