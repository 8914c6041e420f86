"""Hostile input: bad tokens, password guessing, production settings, metrics, crashes."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.utils import get_md5_hash_password

from orders.models import Product
from orders.payments import FakeGateway

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-enough-test-password"
SECRET_MARKER = "internal-detail-that-must-not-leak"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("mallory", "mallory@example.com", PASSWORD)


def claims(user_id: int, *, lifetime: int = 300) -> dict[str, Any]:
    now = int(time.time())
    return {
        "token_type": "access",
        "user_id": str(user_id),
        "jti": uuid.uuid4().hex,
        "iat": now - 600,
        "exp": now + lifetime,
    }


def signing_key() -> str:
    return settings.SIMPLE_JWT["SIGNING_KEY"]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(user_id: int) -> dict[str, str]:
    valid = jwt.encode(claims(user_id), signing_key(), algorithm="HS256")
    header, _, signature = valid.split(".")
    return {
        "expired": jwt.encode(claims(user_id, lifetime=-60), signing_key(), algorithm="HS256"),
        # A valid signature, but over other claims: somebody else's user id.
        "forged": f"{header}.{b64(claims(user_id + 1))}.{signature}",
        "other key": jwt.encode(claims(user_id), "not-the-server-key-" * 3, algorithm="HS256"),
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(user_id))}.",
        "garbage": "not.a.token",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["expired", "forged", "other key", "alg none", "garbage"])
def test_bad_tokens_are_refused_with_401(user: Any, kind: str) -> None:
    client = APIClient()
    token = bad_tokens(user.pk)[kind]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    listing = client.get("/api/orders/")
    placing = client.post("/api/orders/", {"items": [], "payment_token": "x"}, format="json")
    assert listing.status_code == 401, listing.content
    assert placing.status_code == 401, placing.content
    assert listing.json()["success"] is False


@pytest.mark.django_db
def test_a_valid_token_is_accepted(user: Any) -> None:
    """The refusals above are about the tokens, not about the way they are built."""
    client = APIClient()
    # Access tokens carry a hash of the password, which changing it invalidates.
    valid_claims = claims(user.pk) | {"hash_password": get_md5_hash_password(user.password)}
    token = jwt.encode(valid_claims, signing_key(), algorithm="HS256")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/orders/").status_code == 200


@pytest.mark.django_db
def test_token_endpoint_is_throttled(user: Any) -> None:
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]
    allowed, _ = ScopedRateThrottle().parse_rate(rate)
    cache.clear()
    client = APIClient()
    guesses = [
        client.post(
            "/api/auth/token/",
            # Another username each time: the login lockout (per username) stays out of it.
            {"username": f"mallory-{n}", "password": f"guess-{n}"},
            format="json",
        ).status_code
        for n in range(allowed + 1)
    ]
    cache.clear()
    assert guesses[:allowed] == [401] * allowed
    assert guesses[-1] == 429


def test_check_deploy_passes_with_production_settings() -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PROMETHEUS_MULTIPROC_DIR"))
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="api.example.com",
        METRICS_TOKEN=secrets.token_urlsafe(32),
        # Production sends mail (Django 6.1's deploy checks refuse the console backend).
        EMAIL_URL="smtp://mail.example.com:587",
    )
    completed = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "no issues" in completed.stdout


@pytest.mark.django_db
def test_metrics_require_the_configured_token(settings: Any) -> None:
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "METRICS_TOKEN": "metrics-token-for-tests"}
    client = APIClient()
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-token")
    assert wrong.status_code == 401
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-for-tests")
    assert right.status_code == 200
    assert b"orchestrator_" in right.content


def assert_no_internals(raw: bytes) -> None:
    text = raw.decode(errors="replace")
    assert SECRET_MARKER not in text
    assert "Traceback" not in text
    assert 'File "' not in text


@pytest.mark.django_db
def test_crash_in_a_pipeline_does_not_leak_internals(user: Any) -> None:
    assert settings.DEBUG is False
    product = Product.objects.create(sku="LEAK-1", name="Leak", price="1.00", stock=3)
    client = APIClient()
    client.force_authenticate(user)
    with mock.patch.object(FakeGateway, "charge", side_effect=RuntimeError(SECRET_MARKER)):
        response = client.post(
            "/api/orders/",
            {"items": [{"product": product.pk, "quantity": 1}], "payment_token": "tok_visa"},
            format="json",
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert_no_internals(response.content)


@pytest.mark.django_db
def test_crash_in_a_view_does_not_leak_internals(user: Any) -> None:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    with mock.patch(
        "orders.views.OrderListCreateView.get_queryset", side_effect=KeyError(SECRET_MARKER)
    ):
        api = client.get("/api/orders/")
    failing = mock.patch.object(
        connections["default"], "cursor", side_effect=RuntimeError(SECRET_MARKER)
    )
    with failing:
        plain = client.get("/ready/")
    assert api.status_code == 500
    assert api.json()["error"]["code"] == "internal_error"
    assert plain.status_code == 500
    assert_no_internals(api.content)
    assert_no_internals(plain.content)
