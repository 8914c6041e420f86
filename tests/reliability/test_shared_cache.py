"""Throttle counts in Redis (CACHE_URL=redis://...), for servers on several machines.

Uses Redis database 2 on the local server, with a key prefix of this test's own,
and removes only the keys it made.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

REDIS_URL = "redis://127.0.0.1:6379/2"


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[tuple[redis.Redis, str]]:
    server = redis.Redis.from_url(REDIS_URL)
    try:
        server.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        }
    }
    try:
        yield server, prefix
    finally:
        keys = list(server.scan_iter(f"{prefix}:*"))
        if keys:
            server.delete(*keys)


@pytest.mark.django_db
def test_throttle_counts_live_in_redis(redis_cache: tuple[redis.Redis, str]) -> None:
    server, prefix = redis_cache
    rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]
    allowed, _ = ScopedRateThrottle().parse_rate(rate)
    client = APIClient()
    statuses = [
        client.post(
            "/api/auth/token/", {"username": f"nobody-{n}", "password": "x"}, format="json"
        ).status_code
        for n in range(allowed + 1)
    ]
    assert statuses == [401] * allowed + [429]
    assert [key.decode() for key in server.scan_iter(f"{prefix}:*throttle_token*")]
