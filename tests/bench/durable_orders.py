"""The second baseline: ``POST /api/orders/`` by hand, with the guarantees the orchestrator gives.

``inline_orders.py`` is the view the pattern replaces; it is not crash-safe:
a worker killed between the capture and the commit leaves money taken with no
order and no trace of it, and the email is sent in the request. This view is
what a careful engineer writes by hand to close those holes without the engine,
and so the fair measure of what the engine itself costs:

- the charge's intent is committed before the gateway is called, on a
  connection of its own (``journal.claim``: the same table and statement the
  engine uses, the cheapest way there is), so that recovery can refund a
  capture whose order never committed;
- the order's transaction settles that intent (one ``UPDATE``) and fails the
  request if recovery took it over meanwhile;
- the email and the analytics event are two tasks of Django's Tasks API,
  enqueued inside that transaction (``django_tasks_db``: one ``INSERT`` each),
  so they exist exactly when the order does and a failed order queues nothing.

Everything else (stages, queries, timing, envelope) is ``inline_orders.py``'s.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_tasks import task

from orchestration import ServiceUnavailable, journal
from orchestration.models import EffectRecord
from orders.models import Order, Product
from orders.notifications import send_order_email
from tests.bench.inline_orders import NAME, InlineCreateOrderView

analytics = logging.getLogger("orders.analytics")


@task()
def send_confirmation_task(order_id: int) -> None:
    """Email the customer that the order is placed (from the committed rows)."""
    order = Order.objects.select_related("owner").get(pk=order_id)
    if order.owner.email:
        send_order_email(
            order=order,
            subject=f"Order #{order.pk} confirmed",
            body=f"Thank you for your order #{order.pk}.\n\nTotal: {order.total}\n",
            timeout=None,
        )


@task()
def track_analytics_task(order_id: int) -> None:
    order = Order.objects.get(pk=order_id)
    analytics.info("order_placed order=%s total=%s", order.pk, order.total)


class DurableCreateOrderView(InlineCreateOrderView):
    """Place and pay an order by hand, journaled and with a transactional outbox."""

    def charge_key(self, request_id: str, user: Any) -> str:
        self.owner = uuid.uuid4().hex
        self.effect = journal.claim(
            scope=f"run:{self.owner}",
            orchestrator=NAME,
            step="charge_payment",
            request_id=request_id,
            owner=self.owner,
        )
        return self.effect.key

    def before_commit(
        self, order: Order, wanted: dict[int, int], products: dict[int, Product]
    ) -> None:
        settled = EffectRecord.objects.filter(
            key=self.effect.key, owner=self.owner, state=EffectRecord.State.PENDING
        ).update(state=EffectRecord.State.SETTLED, updated=timezone.now())
        if settled != 1:
            raise ServiceUnavailable(
                "The request took too long and was rolled back; try again.",
                code="effect_lease_lost",
            )
        send_confirmation_task.enqueue(order.pk)
        track_analytics_task.enqueue(order.pk)
        assert transaction.get_connection().in_atomic_block

    def refund(self, charge: Any) -> None:
        effect = getattr(self, "effect", None)
        if effect is not None and not journal.begin_compensation(effect, owner=self.owner):
            return
        super().refund(charge)
        if effect is not None:
            journal.record_compensation(effect, owner=self.owner, error=None)
