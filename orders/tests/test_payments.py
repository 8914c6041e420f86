from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from orchestration import PaymentRequired, ServiceUnavailable
from orders.payments import FakeGateway, _load_gateway, get_gateway


class RecordingGateway(FakeGateway):
    """A gateway class other than the default, to prove the setting is read."""


def test_visa_token_is_charged(gateway: FakeGateway) -> None:
    charge = gateway.charge(amount=Decimal("12.50"), token="tok_visa", idempotency_key="k1")

    assert charge.amount == Decimal("12.50")
    assert gateway.charges == {charge.id: charge}


def test_same_idempotency_key_charges_once(gateway: FakeGateway) -> None:
    first = gateway.charge(amount=Decimal("5"), token="tok_visa", idempotency_key="same")
    again = gateway.charge(amount=Decimal("5"), token="tok_visa", idempotency_key="same")

    assert again == first
    assert len(gateway.charges) == 1


@pytest.mark.parametrize(
    ("token", "error", "code"),
    [
        ("tok_declined", PaymentRequired, "payment_declined"),
        ("tok_unavailable", ServiceUnavailable, "payment_gateway_unavailable"),
        ("tok_made_up", PaymentRequired, "invalid_payment_token"),
    ],
)
def test_failing_tokens_charge_nothing(
    gateway: FakeGateway, token: str, error: type[Exception], code: str
) -> None:
    with pytest.raises(error) as raised:
        gateway.charge(amount=Decimal("5"), token=token, idempotency_key="k")

    assert raised.value.code == code
    assert gateway.charges == {}


def test_a_charge_is_refunded_once(gateway: FakeGateway) -> None:
    charge = gateway.charge(amount=Decimal("20"), token="tok_visa", idempotency_key="k")

    refund = gateway.refund(charge_id=charge.id, amount=Decimal("20"))
    again = gateway.refund(charge_id=charge.id, amount=Decimal("20"))

    assert refund.charge_id == charge.id
    assert again == refund
    assert gateway.refunds == {charge.id: refund}


def test_refund_of_unknown_charge_or_excess_amount_is_rejected(gateway: FakeGateway) -> None:
    charge = gateway.charge(amount=Decimal("20"), token="tok_visa", idempotency_key="k")

    with pytest.raises(PaymentRequired, match="No charge"):
        gateway.refund(charge_id="ch_missing", amount=Decimal("1"))
    with pytest.raises(PaymentRequired, match="exceeds"):
        gateway.refund(charge_id=charge.id, amount=Decimal("20.01"))
    assert gateway.refunds == {}


def test_a_charge_captured_by_another_process_can_be_refunded(gateway: FakeGateway) -> None:
    charge = gateway.charge(amount=Decimal("19.99"), token="tok_visa", idempotency_key="k")
    other_worker = FakeGateway()

    refund = other_worker.refund(charge_id=charge.id, amount=Decimal("19.99"))

    assert refund.charge_id == charge.id
    with pytest.raises(PaymentRequired, match="exceeds"):
        FakeGateway().refund(charge_id=charge.id, amount=Decimal("20.00"))


def test_a_forged_charge_id_is_not_refunded() -> None:
    nonce, cents, signature = "0123456789abcdef", "100000", "0" * 16

    with pytest.raises(PaymentRequired, match="No charge"):
        FakeGateway().refund(charge_id=f"ch_{nonce}_{cents}_{signature}", amount=Decimal("1"))


def test_gateway_comes_from_the_setting(settings: object) -> None:
    settings.PAYMENT_GATEWAY = f"{__name__}.RecordingGateway"

    assert type(get_gateway()) is RecordingGateway
    assert get_gateway() is get_gateway()


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("orders.payments.NoSuchGateway", "cannot be imported"),
        ("orders.payments.Charge", "does not implement"),
    ],
)
def test_misconfigured_gateway_names_the_setting(settings: object, path: str, message: str) -> None:
    settings.PAYMENT_GATEWAY = path
    _load_gateway.cache_clear()

    with pytest.raises(ImproperlyConfigured, match=f"PAYMENT_GATEWAY=.*{message}"):
        get_gateway()
