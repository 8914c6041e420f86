from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.demo import DEMO_ADMIN, DEMO_USER, seed_demo

NEXT_STEPS = """
Demo accounts: {user} / {user_password} (customer),
{admin} / {admin_password} (the admin, at {address}/admin/).

Get a token:
  curl -s -X POST {address}/api/auth/token/ \\
       -H 'Content-Type: application/json' \\
       -d '{{"username": "{user}", "password": "{user_password}"}}'

Then send it as "Authorization: Bearer <access>"; docs/example-project.md walks through an order.
"""


#: `make run` serves on PORT (8000 unless set), as `manage.py runserver` does by default.
DEFAULT_PORT = 8000


def server_address() -> str:
    """The development server's address: http://127.0.0.1 and the PORT variable's port."""
    raw = os.environ.get("PORT", "").strip() or str(DEFAULT_PORT)
    if not raw.isdecimal() or not 1 <= int(raw) <= 65535:
        raise CommandError(f"PORT must be a TCP port number (1 to 65535), not {raw!r}.")
    return f"http://127.0.0.1:{int(raw)}"


class Command(BaseCommand):
    help = "Create the demo accounts and products (idempotent; development only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates accounts with well-known passwords, so it runs only "
                "with DJANGO_DEBUG=1."
            )
        address = server_address()
        report = seed_demo()
        for name in report.created:
            self.stdout.write(self.style.SUCCESS(f"created {name}"))
        if report.existing:
            self.stdout.write(f"already present: {', '.join(report.existing)}")
        self.stdout.write(
            NEXT_STEPS.format(
                user=DEMO_USER[0],
                user_password=DEMO_USER[1],
                admin=DEMO_ADMIN[0],
                admin_password=DEMO_ADMIN[1],
                address=address,
            )
        )
