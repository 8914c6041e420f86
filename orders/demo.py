"""Demo data for ``manage.py seed_demo``: two accounts and a small catalogue."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction

from orders.models import Product

DEMO_USER = ("demo", "demo-password", "demo@example.com")
DEMO_ADMIN = ("admin", "admin-password", "admin@example.com")

DEMO_PRODUCTS = (
    # sku, name, price, stock, active
    ("KB-001", "Mechanical keyboard", Decimal("89.00"), 25, True),
    ("MS-002", "Wireless mouse", Decimal("29.50"), 50, True),
    ("MN-003", '27" monitor', Decimal("249.99"), 10, True),
    ("CB-004", "USB-C cable", Decimal("9.99"), 200, True),
    ("LE-005", "Limited edition desk mat", Decimal("35.00"), 3, True),
    ("OLD-006", "Discontinued webcam", Decimal("49.00"), 5, False),
)


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


@transaction.atomic
def seed_demo() -> SeedReport:
    """Create what is missing; anything that exists is left as it is (stock, passwords)."""
    report = SeedReport()
    user_model = get_user_model()
    for (username, password, email), staff in ((DEMO_USER, False), (DEMO_ADMIN, True)):
        user, created = user_model.objects.get_or_create(
            username=username,
            defaults={"email": email, "is_staff": staff, "is_superuser": staff},
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        (report.created if created else report.existing).append(f"user {username}")
    for sku, name, price, stock, active in DEMO_PRODUCTS:
        _, created = Product.objects.get_or_create(
            sku=sku, defaults={"name": name, "price": price, "stock": stock, "active": active}
        )
        (report.created if created else report.existing).append(f"product {sku}")
    return report
