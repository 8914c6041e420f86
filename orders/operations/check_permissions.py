from __future__ import annotations

from orchestration import NotAuthenticated, PermissionDenied
from orders.types import CreateOrderContext


def check_permissions(ctx: CreateOrderContext) -> CreateOrderContext:
    """Only a signed-in, active account may order.

    The API's authentication already refuses anonymous callers; this step is
    what protects the pipeline when it is run from elsewhere (a command, a job).
    """
    user = ctx.user
    if user is None or not user.is_authenticated:
        raise NotAuthenticated("Sign in to place an order.")
    if not user.is_active:
        raise PermissionDenied("This account is disabled and cannot place orders.")
    return ctx
