"""The documentation's screenshots, taken from the example project: `make docs-screenshots`.

Runs the project on a temporary SQLite database with the demo data, places a few
orders through the API (paid ones, a declined card, a processor outage and a cancelled
order) with the mail server unreachable (so the queued steps list has a last error), lets
the task worker take the after-commit steps once, then photographs each page in headless
Chromium at the given width::

    python -m tests.browser.screenshots                      # docs/images/, 1400 px
    python -m tests.browser.screenshots --width 1000 --output /tmp/at-1000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The file each page is written to, in the order they are taken.
PAGES = (
    "admin-runrecords.png",
    "run-page.png",
    "orchestrators-rates.png",
    "admin-queuedsteps.png",
    "swagger.png",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def project_environment(database: Path) -> dict[str, str]:
    """The example project in development mode on its own database, every run recorded
    and the mail server unreachable (port 1 refuses connections)."""
    return {
        **os.environ,
        "DJANGO_ENV_FILE": "",
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{database}",
        "CACHE_URL": "locmemcache://",
        "TASKS_BACKEND": "database",
        "ORCHESTRATION_RUN_SAMPLE_RATE": "1",
        "EMAIL_URL": "smtp://127.0.0.1:1",
        "EMAIL_TIMEOUT": "1",
    }


def manage(env: Mapping[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True
    )


@contextmanager
def running_server(env: Mapping[str, str]) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{address}/health/", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the development server did not start on {address}")
            time.sleep(0.3)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=20)


def demo_accounts() -> tuple[tuple[str, str], tuple[str, str]]:
    """(username, password) of the demo customer and of the demo admin."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from orders.demo import DEMO_ADMIN, DEMO_USER

    return DEMO_USER[:2], DEMO_ADMIN[:2]


def place_orders(address: str, customer: tuple[str, str]) -> None:
    """Two paid orders (one then cancelled), a declined card, a processor outage, a quote."""
    session = requests.Session()
    tokens = session.post(
        f"{address}/api/auth/token/",
        json={"username": customer[0], "password": customer[1]},
        timeout=30,
    )
    tokens.raise_for_status()
    session.headers["Authorization"] = f"Bearer {tokens.json()['access']}"
    products = session.get(f"{address}/api/products/", timeout=30).json()["results"]
    expected = {"tok_visa": 201, "tok_declined": 402, "tok_unavailable": 503}
    placed = []
    for index, token in enumerate(("tok_visa", "tok_visa", "tok_declined", "tok_unavailable")):
        body: dict[str, Any] = {
            "items": [{"product": products[index]["id"], "quantity": 1}],
            "payment_token": token,
        }
        answer = session.post(f"{address}/api/orders/", json=body, timeout=30)
        if answer.status_code != expected[token]:
            raise RuntimeError(f"placing an order with {token}: {answer.status_code} {answer.text}")
        if answer.status_code == 201:
            placed.append(answer.json()["data"]["id"])
    cancelled = session.post(f"{address}/api/orders/{placed[-1]}/cancel/", timeout=30)
    cancelled.raise_for_status()
    quote: dict[str, Any] = {
        "items": [{"product": products[0]["id"], "quantity": 2}],
        "country": "FR",
    }
    session.post(f"{address}/api/orders/quote/", json=quote, timeout=30).raise_for_status()


def log_in(page: Page, admin: tuple[str, str]) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("input[name=username]", admin[0])
    page.fill("input[name=password]", admin[1])
    page.locator("input[type=submit]").click()
    expect(page.locator("#user-tools")).to_be_visible()


def diagrams_drawn(page: Page) -> None:
    expect(page.locator("html")).to_have_attribute("data-diagrams", "rendered")


def photograph(address: str, admin: tuple[str, str], output: Path, width: int) -> list[Path]:
    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(
            base_url=address.replace("127.0.0.1", "localhost"),
            viewport={"width": width, "height": 900},
        )
        context.set_default_timeout(20_000)
        page = context.new_page()
        log_in(page, admin)

        def shoot(name: str, *, full_page: bool = True) -> None:
            path = output / name
            page.screenshot(path=str(path), full_page=full_page)
            written.append(path)

        page.goto("/admin/orchestration/runrecord/")
        shoot("admin-runrecords.png")
        page.goto("/admin/orchestration/runrecord/?error_code=payment_declined")
        page.locator("#result_list tbody tr th a").first.click()
        diagrams_drawn(page)
        shoot("run-page.png")
        page.goto("/admin/orchestration/runrecord/orchestrators/")
        diagrams_drawn(page)
        shoot("orchestrators-rates.png")
        page.goto("/admin/orchestration/queuedstep/")
        shoot("admin-queuedsteps.png")
        page.goto("/documentation/")
        operation = page.locator(".opblock-post", has_text="/api/orders/").first
        operation.locator(".opblock-summary").click()
        expect(operation.locator(".opblock-description-wrapper").first).to_be_visible()
        operation.scroll_into_view_if_needed()
        shoot("swagger.png", full_page=False)
        browser.close()
    return written


def take(output: Path, width: int) -> list[Path]:
    """Every page of ``PAGES`` as a PNG in ``output``, ``width`` CSS pixels wide."""
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="docs-screenshots-") as folder:
        env = project_environment(Path(folder) / "db.sqlite3")
        os.environ.update(env)  # the demo accounts are read with the same settings
        customer, admin = demo_accounts()
        manage(env, "migrate", "--no-input")
        manage(env, "seed_demo")
        with running_server(env) as address:
            place_orders(address, customer)
            manage(env, "db_worker", "--batch", "--no-reload", "--no-startup-delay")
            return photograph(address, admin, output, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--width", type=int, default=1400, help="CSS pixels (default 1400)")
    arguments = parser.parse_args()
    for path in take(arguments.output, arguments.width):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
