"""The operations of CreateOrder, one at a time, each with at most one thing faked."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.core import mail

from orchestration import PaymentRequired, ServiceUnavailable
from orchestration.models import EffectRecord
from orchestration.testing import make_context, run_step
from orders.models import IdempotencyRecord, Order, OrderItem, Product
from orders.operations.charge_payment import REFUND_TIMEOUT, refund_charge
from orders.orchestrators import CreateOrder
from orders.payments import Charge, FakeGateway
from orders.tests.support import order_body, step_named
from orders.types import CreateOrderContext, CreateOrderInput, OrderLine

pytestmark = pytest.mark.django_db


def order_context(user: Any, *lines: tuple[Product, int], **fields: Any) -> CreateOrderContext:
    return make_context(
        CreateOrderContext,
        input=CreateOrderInput(data=order_body(*lines), idempotency_key=fields.pop("key", None)),
        user=user,
        lines=tuple(OrderLine(product.pk, quantity) for product, quantity in lines),
        payment_token="tok_visa",
        **fields,
    )


def placed_context(user: Any, *lines: tuple[Product, int]) -> CreateOrderContext:
    """A context as it is after reserve_stock and create_order."""
    ctx = order_context(user, *lines, products={product.pk: product for product, _ in lines})
    return run_step(step_named(CreateOrder, "create_order"), ctx).ctx


# -- validate_order -----------------------------------------------------------------


def test_validate_order_reads_lines_and_token(user: Any, keyboard: Product, cable: Product) -> None:
    ctx = make_context(
        CreateOrderContext,
        input=CreateOrderInput(data=order_body((keyboard, 2), (cable, 1), token="tok_visa")),
        user=user,
    )

    outcome = run_step(step_named(CreateOrder, "validate_order"), ctx)

    assert outcome.ok
    assert outcome.ctx.lines == (OrderLine(keyboard.pk, 2), OrderLine(cable.pk, 1))
    assert outcome.ctx.payment_token == "tok_visa"


def test_validate_order_reports_field_errors(user: Any, keyboard: Product) -> None:
    data = {"items": [{"product": keyboard.pk, "quantity": 0}], "total": "0.01"}
    ctx = make_context(CreateOrderContext, input=CreateOrderInput(data=data), user=user)

    outcome = run_step(step_named(CreateOrder, "validate_order"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (400, "validation_failed")
    assert set(outcome.error.details) == {"items", "payment_token", "total"}
    assert outcome.ctx.lines == ()


# -- check_permissions --------------------------------------------------------------


def test_check_permissions_lets_an_active_user_order(user: Any) -> None:
    outcome = run_step(step_named(CreateOrder, "check_permissions"), order_context(user))

    assert outcome.ok


def test_check_permissions_refuses_anonymous_and_disabled_users(user: Any) -> None:
    anonymous = run_step(step_named(CreateOrder, "check_permissions"), order_context(None))
    user.is_active = False
    disabled = run_step(step_named(CreateOrder, "check_permissions"), order_context(user))

    assert anonymous.error is not None
    assert anonymous.error.status == 401
    assert disabled.error is not None
    assert disabled.error.code == "permission_denied"


# -- claim_idempotency_key ----------------------------------------------------------


def test_claim_idempotency_key_records_the_key(user: Any, keyboard: Product) -> None:
    ctx = order_context(user, (keyboard, 1), key="key-1")

    outcome = run_step(step_named(CreateOrder, "claim_idempotency_key"), ctx)

    assert outcome.ok
    record = IdempotencyRecord.objects.get(user=user, key="key-1")
    assert record.fingerprint == ctx.input.fingerprint
    assert record.response_status is None


@pytest.mark.parametrize(
    ("stored_fingerprint", "code"),
    [("another-body", "idempotency_key_reused"), (None, "idempotency_request_in_progress")],
)
def test_claim_idempotency_key_refuses_a_taken_key(
    user: Any, keyboard: Product, stored_fingerprint: str | None, code: str
) -> None:
    ctx = order_context(user, (keyboard, 1), key="key-1")
    IdempotencyRecord.objects.create(
        user=user, key="key-1", fingerprint=stored_fingerprint or ctx.input.fingerprint
    )

    outcome = run_step(step_named(CreateOrder, "claim_idempotency_key"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (409, code)
    assert IdempotencyRecord.objects.count() == 1


def test_a_key_is_per_user(user: Any, other_user: Any, keyboard: Product) -> None:
    IdempotencyRecord.objects.create(user=other_user, key="shared", fingerprint="x")

    outcome = run_step(
        step_named(CreateOrder, "claim_idempotency_key"),
        order_context(user, (keyboard, 1), key="shared"),
    )

    assert outcome.ok


# -- reserve_stock ------------------------------------------------------------------


def test_reserve_stock_takes_the_units(user: Any, keyboard: Product, cable: Product) -> None:
    outcome = run_step(
        step_named(CreateOrder, "reserve_stock"), order_context(user, (keyboard, 5), (cable, 3))
    )

    assert outcome.ok
    keyboard.refresh_from_db()
    cable.refresh_from_db()
    assert (keyboard.stock, cable.stock) == (0, 97)
    assert outcome.ctx.products[keyboard.pk].stock == 0


def test_reserve_stock_refuses_more_than_available(
    user: Any, keyboard: Product, cable: Product
) -> None:
    outcome = run_step(
        step_named(CreateOrder, "reserve_stock"), order_context(user, (cable, 1), (keyboard, 6))
    )

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (409, "out_of_stock")
    assert outcome.error.details == {
        "items": [{"product": keyboard.pk, "requested": 6, "available": 5}]
    }
    assert set(Product.objects.values_list("stock", flat=True)) == {5, 100}


def test_reserve_stock_refuses_a_product_withdrawn_after_validation(
    user: Any, keyboard: Product
) -> None:
    ctx = order_context(user, (keyboard, 1))
    Product.objects.filter(pk=keyboard.pk).update(active=False)

    outcome = run_step(step_named(CreateOrder, "reserve_stock"), ctx)

    assert outcome.error is not None
    assert outcome.error.code == "product_unavailable"
    assert outcome.error.details == {"products": [keyboard.pk]}


# -- create_order -------------------------------------------------------------------


def test_create_order_belongs_to_the_acting_user(
    user: Any, other_user: Any, keyboard: Product, cable: Product
) -> None:
    ctx = placed_context(user, (keyboard, 2), (cable, 3))

    order = Order.objects.get()
    assert ctx.order == order
    assert order.owner == user
    assert order.status == Order.Status.PENDING
    assert not Order.objects.filter(owner=other_user).exists()


def test_create_order_computes_totals_from_product_prices(
    user: Any, keyboard: Product, cable: Product
) -> None:
    placed_context(user, (keyboard, 2), (cable, 3))

    order = Order.objects.get()
    items = {item.product_id: item for item in OrderItem.objects.filter(order=order)}
    assert items[keyboard.pk].unit_price == Decimal("89.00")
    assert items[keyboard.pk].line_total == Decimal("178.00")
    assert items[cable.pk].line_total == Decimal("29.97")
    assert order.total == Decimal("207.97")


# -- charge_payment -----------------------------------------------------------------


def test_charge_payment_charges_the_order_total(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 2))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.return_value = Charge(id="ch_1", amount=Decimal("178.00"))

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.ok
    assert outcome.ctx.charge == Charge(id="ch_1", amount=Decimal("178.00"))
    kwargs = gateway.charge.call_args.kwargs
    assert (kwargs["amount"], kwargs["token"]) == (Decimal("178.00"), "tok_visa")
    assert Order.objects.get().status == Order.Status.PENDING


def test_charge_payment_retries_a_transient_failure(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.side_effect = [ServiceUnavailable(), Charge(id="ch_2", amount=Decimal("89"))]

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.ok
    assert outcome.record.attempts == 2
    keys = {call.kwargs["idempotency_key"] for call in gateway.charge.call_args_list}
    # Both attempts asked for the capture under the one key the journal recorded.
    assert len(keys) == 1
    assert EffectRecord.objects.get(key=keys.pop()).state == "settled"


def test_charge_payment_does_not_retry_a_declined_card(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    gateway = mock.Mock(spec=FakeGateway)
    gateway.charge.side_effect = PaymentRequired()

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        outcome = run_step(step_named(CreateOrder, "charge_payment"), ctx)

    assert outcome.error is not None
    assert (outcome.error.status, outcome.error.code) == (402, "payment_declined")
    assert outcome.record.attempts == 1


def test_refund_charge_refunds_what_was_charged(user: Any) -> None:
    ctx = order_context(user, charge=Charge(id="ch_3", amount=Decimal("12.00")))
    gateway = mock.Mock(spec=FakeGateway)

    with mock.patch("orders.operations.charge_payment.get_gateway", return_value=gateway):
        refund_charge(ctx)
        refund_charge(order_context(user))

    gateway.refund.assert_called_once_with(
        charge_id="ch_3", amount=Decimal("12.00"), timeout=REFUND_TIMEOUT
    )


# -- mark_paid ----------------------------------------------------------------------


def test_mark_paid_records_the_charge(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 1))
    ctx.charge = Charge(id="ch_4", amount=Decimal("89.00"))

    outcome = run_step(step_named(CreateOrder, "mark_paid"), ctx)

    assert outcome.ok
    order = Order.objects.get()
    assert (order.status, order.payment_reference) == (Order.Status.PAID, "ch_4")


# -- send_confirmation --------------------------------------------------------------


def test_send_confirmation_mails_the_owner(user: Any, keyboard: Product) -> None:
    ctx = placed_context(user, (keyboard, 2))

    outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.ok
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert f"Order #{ctx.placed_order().pk} confirmed" == message.subject
    assert "2 x Keyboard" in message.body


def test_send_confirmation_is_skipped_without_an_address(user: Any, keyboard: Product) -> None:
    user.email = ""
    ctx = placed_context(user, (keyboard, 1))

    outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.record.status == "skipped"
    assert mail.outbox == []


def test_send_confirmation_reports_a_mail_outage_as_email_unavailable(
    user: Any, keyboard: Product
) -> None:
    ctx = placed_context(user, (keyboard, 1))

    with mock.patch(
        "orders.notifications.send_mail", side_effect=ConnectionRefusedError(111, "refused")
    ):
        outcome = run_step(step_named(CreateOrder, "send_confirmation"), ctx)

    assert outcome.error is not None
    assert (outcome.error.code, outcome.error.status) == ("email_unavailable", 503)
    assert outcome.ctx.errors == [outcome.error]


# -- track_analytics ----------------------------------------------------------------


def test_track_analytics_emits_an_order_placed_event(
    user: Any, keyboard: Product, cable: Product, caplog: pytest.LogCaptureFixture
) -> None:
    ctx = placed_context(user, (keyboard, 2), (cable, 3))

    with caplog.at_level(logging.INFO, logger="orders.analytics"):
        outcome = run_step(step_named(CreateOrder, "track_analytics"), ctx)

    assert outcome.ok
    [record] = [r for r in caplog.records if r.name == "orders.analytics"]
    message = record.getMessage()
    assert f"order={ctx.placed_order().pk}" in message
    assert "lines=2 units=5 total=207.97" in message
