"""The operations of CancelOrder, one at a time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.core import mail

from orchestration import ServiceUnavailable
from orchestration.testing import make_context, run_step
from orders.models import Order, Product
from orders.orchestrators import CancelOrder
from orders.payments import FakeGateway, Refund
from orders.tests.support import place_paid_order, step_named
from orders.types import CancelOrderContext, CancelOrderInput

pytestmark = pytest.mark.django_db


def cancel_context(user: Any, target: Order, **fields: Any) -> CancelOrderContext:
    return make_context(
        CancelOrderContext, input=CancelOrderInput(order_id=target.pk), user=user, **fields
    )


def test_load_order_finds_the_callers_order(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(step_named(CancelOrder, "load_order"), cancel_context(user, order))

    assert outcome.ok
    assert outcome.ctx.order == order


def test_load_order_hides_another_users_order(
    user: Any, other_user: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(step_named(CancelOrder, "load_order"), cancel_context(other_user, order))

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (404, "not_found")


def test_an_operator_loads_any_customers_order_with_the_permission(
    user: Any, django_user_model: Any, keyboard: Product
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    operator = django_user_model.objects.create_superuser("ops", "ops@example.com", "x")
    clerk = django_user_model.objects.create_user("clerk", "clerk@example.com", "x")
    step = step_named(CancelOrder, "load_order")

    def as_operator(actor: Any) -> Any:
        ctx = make_context(
            CancelOrderContext,
            input=CancelOrderInput(order_id=order.pk, any_owner=True),
            user=actor,
        )
        return run_step(step, ctx)

    allowed, refused = as_operator(operator), as_operator(clerk)

    assert allowed.ok
    assert allowed.ctx.order == order
    assert refused.error is not None
    assert (refused.error.status, refused.error.code) == (403, "permission_denied")


@pytest.mark.parametrize(
    ("status", "allowed"),
    [(Order.Status.PAID, True), (Order.Status.CANCELLED, False), (Order.Status.PENDING, False)],
)
def test_check_state_allows_only_paid_orders(
    user: Any, keyboard: Product, status: str, allowed: bool
) -> None:
    order = place_paid_order(user, (keyboard, 1))
    order.status = status

    outcome = run_step(
        step_named(CancelOrder, "check_state"), cancel_context(user, order, order=order)
    )

    assert outcome.ok is allowed
    if not allowed:
        assert outcome.error is not None
        assert (outcome.error.status, outcome.error.code) == (409, "order_not_cancellable")


def test_restock_puts_the_units_back(user: Any, keyboard: Product, cable: Product) -> None:
    order = place_paid_order(user, (keyboard, 2), (cable, 7))

    outcome = run_step(step_named(CancelOrder, "restock"), cancel_context(user, order, order=order))

    assert outcome.ok
    assert dict(Product.objects.values_list("name", "stock")) == {"Keyboard": 5, "Cable": 100}


def test_mark_cancelled_sets_status_and_time(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))

    outcome = run_step(
        step_named(CancelOrder, "mark_cancelled"), cancel_context(user, order, order=order)
    )

    assert outcome.ok
    order.refresh_from_db()
    assert order.status == Order.Status.CANCELLED
    assert order.cancelled_at is not None


def test_refund_refunds_the_charge_and_records_it(
    user: Any, keyboard: Product, gateway: FakeGateway
) -> None:
    order = place_paid_order(user, (keyboard, 2))

    outcome = run_step(step_named(CancelOrder, "refund"), cancel_context(user, order, order=order))

    assert outcome.ok
    refund = gateway.refunds[order.payment_reference]
    assert refund.amount == Decimal("178.00")
    order.refresh_from_db()
    assert order.refund_reference == refund.id


def test_refund_retries_an_unavailable_gateway(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.refund.side_effect = [
        ServiceUnavailable(),
        Refund(id="re_1", charge_id=order.payment_reference, amount=order.total),
    ]

    with mock.patch("orders.operations.refund_order.get_gateway", return_value=gateway):
        outcome = run_step(
            step_named(CancelOrder, "refund"), cancel_context(user, order, order=order)
        )

    assert outcome.ok
    assert outcome.record.attempts == 2
    order.refresh_from_db()
    assert order.refund_reference == "re_1"


def test_refund_is_skipped_for_an_order_never_charged(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    order.payment_reference = ""

    outcome = run_step(step_named(CancelOrder, "refund"), cancel_context(user, order, order=order))

    assert outcome.record.status == "skipped"


def test_notify_mails_the_owner(user: Any, keyboard: Product) -> None:
    order = place_paid_order(user, (keyboard, 1))
    refund = Refund(id="re_2", charge_id=order.payment_reference, amount=order.total)

    outcome = run_step(
        step_named(CancelOrder, "notify"), cancel_context(user, order, order=order, refund=refund)
    )

    assert outcome.ok
    [message] = mail.outbox
    assert message.to == [user.email]
    assert message.subject == f"Order #{order.pk} cancelled"
    assert "89.00 will be refunded" in message.body
