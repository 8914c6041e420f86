"""Attacks from outside, in process: identity spoofing, password guessing, sessions that
never end, input that used to crash a request, and the request edges of an API.

The same attacks against real servers (several gunicorn workers, nginx, PostgreSQL)
are in test_abuse_servers.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.test.client import RequestFactory
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from config.auth import SessionRefreshToken
from config.clients import client_ip, parse_trusted_proxies
from orders.models import Product

PASSWORD = "a-long-enough-test-password"
TOKEN = "/api/auth/token/"
REFRESH = "/api/auth/token/refresh/"
JSON_ENDPOINTS = [
    "/api/auth/token/",
    "/api/auth/token/refresh/",
    "/api/auth/token/verify/",
    "/api/auth/token/blacklist/",
    "/api/orders/",
    "/api/orders/1/cancel/",
]
#: The endpoints that read a body (cancelling ignores it).
BODY_ENDPOINTS = JSON_ENDPOINTS[:-1]


@pytest.fixture(autouse=True)
def fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def clean_counts(db: None) -> Any:
    """Throttle counts live in the shared cache: start and end without any."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user(django_user_model: Any) -> User:
    return django_user_model.objects.create_user("victim", "victim@example.com", PASSWORD)


def login(client: Any, username: str, password: str, **extra: Any) -> Any:
    return client.post(TOKEN, {"username": username, "password": password}, format="json", **extra)


def assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code, body
    return body


# -- who the client is ----------------------------------------------------------------


def meta_request(remote: str, forwarded: str | None = None) -> Any:
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "client"),
    [
        ("0", "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # default: the peer, whatever it says
        ("1", "", "198.51.100.7", "198.51.100.7"),  # nginx on a unix socket
        ("1", "10.0.0.2", "1.2.3.4, 198.51.100.7", "198.51.100.7"),  # the spoofed hop is ignored
        ("2", "10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
        ("1", "10.0.0.2", "not-an-address", "10.0.0.2"),
        ("10.0.0.0/8", "10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.1", "198.51.100.7"),
        ("10.0.0.0/8", "203.0.113.9", "1.2.3.4", "203.0.113.9"),  # not from a trusted proxy
    ],
)
def test_the_client_is_who_the_trusted_proxies_say(
    settings: Any, trusted: str, remote: str, forwarded: str, client: str
) -> None:
    settings.TRUSTED_PROXIES = parse_trusted_proxies(trusted)
    assert client_ip(meta_request(remote, forwarded)) == client


def test_a_malformed_trusted_proxies_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        parse_trusted_proxies("10.0.0.0/8,proxy.example")


def test_a_spoofed_forwarded_for_does_not_dodge_the_throttle() -> None:
    allowed, _ = ScopedRateThrottle().parse_rate(
        settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["token"]
    )
    client = APIClient()
    statuses = [
        login(client, f"nobody-{n}", "guess", HTTP_X_FORWARDED_FOR=f"10.1.{n}.{n}").status_code
        for n in range(allowed + 5)
    ]
    assert statuses[:allowed] == [401] * allowed
    assert statuses[allowed:] == [429] * 5


# -- password guessing ---------------------------------------------------------------


def test_the_token_endpoint_locks_a_username_out_after_the_failure_limit(user: User) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    client = APIClient()
    statuses = [login(client, "victim", f"guess-{n}").status_code for n in range(limit)]
    right = login(client, "victim", PASSWORD)

    assert statuses == [401] * (limit - 1) + [429]
    body = assert_envelope(right, 429, "locked_out")
    assert int(right["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert body["error"]["details"]["retry_after_seconds"] == int(right["Retry-After"])


def test_the_lockout_is_per_username_and_address(user: User, django_user_model: Any) -> None:
    django_user_model.objects.create_user("bystander", "b@example.com", PASSWORD)
    client = APIClient()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, "victim", f"guess-{n}", REMOTE_ADDR="198.51.100.1")

    assert login(client, "victim", PASSWORD, REMOTE_ADDR="198.51.100.1").status_code == 429
    assert login(client, "victim", PASSWORD, REMOTE_ADDR="198.51.100.2").status_code == 200
    assert login(client, "bystander", PASSWORD, REMOTE_ADDR="198.51.100.1").status_code == 200


def test_a_username_longer_than_any_user_can_have_is_a_400(user: User) -> None:
    """The lockout records failed usernames: one too long to store was a 500 on PostgreSQL."""
    response = login(APIClient(), "\U0001d54f" * 2000, "guess")
    body = assert_envelope(response, 400, "validation_failed")
    assert "username" in body["error"]["details"]


def test_the_lockout_ends_after_the_cool_off(user: User) -> None:
    client = APIClient()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, "victim", f"guess-{n}")
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=5)):
        cache.clear()  # the throttle's own window is not what this tests
        assert login(client, "victim", PASSWORD).status_code == 200


@pytest.mark.parametrize("login_url", ["/admin/login/", "/api-auth/login/"])
def test_the_login_forms_lock_out_with_a_page(user: User, login_url: str) -> None:
    user.is_staff = True
    user.save()
    client = Client()
    failures = [
        client.post(login_url, {"username": "victim", "password": f"guess-{n}"})
        for n in range(settings.AXES_FAILURE_LIMIT)
    ]
    right = client.post(login_url, {"username": "victim", "password": PASSWORD})

    assert [response.status_code for response in failures[:-1]] == [200] * (
        settings.AXES_FAILURE_LIMIT - 1
    )
    assert failures[-1].status_code == 429
    assert right.status_code == 429
    assert b"Too many failed login attempts" in right.content
    assert "_auth_user_id" not in client.session


def test_an_admin_unlocks_a_locked_out_user(user: User, admin_client: Client) -> None:
    client = APIClient()
    for n in range(settings.AXES_FAILURE_LIMIT):
        login(client, "victim", f"guess-{n}")
    attempt = AccessAttempt.objects.get(username="victim")

    listing = admin_client.get("/admin/axes/accessattempt/")
    deleted = admin_client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200
    assert b"victim" in listing.content
    assert deleted.status_code == 302
    assert login(client, "victim", PASSWORD).status_code == 200


# -- sessions that end ------------------------------------------------------------------


def obtain_pair(client: APIClient) -> dict[str, str]:
    response = login(client, "victim", PASSWORD)
    assert response.status_code == 200, response.content
    return response.json()


def refresh(client: APIClient, token: str) -> Any:
    return client.post(REFRESH, {"refresh": token}, format="json")


def test_a_password_change_ends_every_token_of_the_user(user: User) -> None:
    client = APIClient()
    first, second = obtain_pair(client), obtain_pair(client)

    user.set_password("another-long-enough-password")
    user.save()

    for pair in (first, second):
        assert_envelope(refresh(client, pair["refresh"]), 401, "token_not_valid")
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {pair['access']}")
        assert_envelope(client.get("/api/orders/"), 401, "password_changed")
        client.credentials()


def test_deactivating_a_user_revokes_their_refresh_tokens(user: User) -> None:
    client = APIClient()
    pair = obtain_pair(client)

    user.is_active = False
    user.save()
    user.is_active = True  # even reactivated, the old session stays over
    user.save()

    assert_envelope(refresh(client, pair["refresh"]), 401, "token_not_valid")


def test_other_saves_of_the_user_keep_the_session(user: User) -> None:
    client = APIClient()
    pair = obtain_pair(client)
    user.first_name = "Victor"
    user.save()
    assert refresh(client, pair["refresh"]).status_code == 200


def first_refresh_token(source: str, client: APIClient, user: User) -> str:
    """A session's first refresh token: from a login, or minted by code (no ``auth_time``)."""
    if source == "login":
        return obtain_pair(client)["refresh"]
    return str(RefreshToken.for_user(user))


@pytest.mark.parametrize("source", ["login", "RefreshToken.for_user"])
def test_a_refresh_chain_ends_at_the_session_maximum_age(user: User, source: str) -> None:
    """Rotating every 20 hours keeps each refresh token fresh, but not the session."""
    client = APIClient()
    start = timezone.now()
    token = first_refresh_token(source, client, user)
    step = timedelta(hours=20)
    rotations = 0
    answer = None
    # Twice as many rotations as the maximum age allows: a chain that never ends stops here.
    limit = 2 * (settings.JWT_SESSION_MAX_AGE // step + 1)
    with time_machine.travel(start, tick=False) as traveller:
        while rotations < limit:
            traveller.shift(step)
            answer = refresh(client, token)
            if answer.status_code != 200:
                break
            token = answer.json()["refresh"]
            rotations += 1
    # The refresh that failed was the first one past the maximum age.
    assert rotations * step < settings.JWT_SESSION_MAX_AGE <= (rotations + 1) * step
    assert_envelope(answer, 401, "token_not_valid")


def test_a_token_minted_without_auth_time_carries_its_issue_time_through_rotation(
    user: User,
) -> None:
    client = APIClient()
    minted = RefreshToken.for_user(user)
    assert "auth_time" not in minted.payload
    with time_machine.travel(timezone.now() + timedelta(hours=5), tick=False):
        answer = refresh(client, str(minted))
    assert answer.status_code == 200, answer.content
    rotated = RefreshToken(answer.json()["refresh"], verify=False)
    assert rotated["auth_time"] == minted["iat"]
    assert rotated["iat"] > minted["iat"]
    session_end = datetime_from_epoch(minted["iat"]) + settings.JWT_SESSION_MAX_AGE
    assert datetime_from_epoch(rotated["exp"]) <= session_end


def test_a_session_past_its_maximum_age_is_refused_even_if_its_token_has_not_expired(
    user: User, settings: Any
) -> None:
    # A maximum age shorter than a refresh token's lifetime: the token alone would still do.
    settings.JWT_SESSION_MAX_AGE = timedelta(hours=2)
    client = APIClient()
    minted, logged_in = str(RefreshToken.for_user(user)), obtain_pair(client)["refresh"]
    with time_machine.travel(timezone.now() + timedelta(hours=3), tick=False):
        minted_answer = assert_envelope(refresh(client, minted), 401, "token_not_valid")
        assert_envelope(refresh(client, logged_in), 401, "token_not_valid")
    # The minted token itself is valid for a day: the session's age refused it.
    assert "maximum age" in json.dumps(minted_answer["error"])


def test_the_token_views_mint_session_tokens_that_carry_auth_time(user: User) -> None:
    token = SessionRefreshToken.for_user(user)
    assert token["auth_time"] == token["iat"]
    pair = obtain_pair(APIClient())
    assert "auth_time" in RefreshToken(pair["refresh"], verify=False).payload


# -- input that must never be a 5xx --------------------------------------------------


@pytest.fixture
def authed(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {obtain_pair(client)['access']}")
    return client


HOSTILE_BODIES = {
    "lone surrogate in a key": b'{"\\ud800": 1, "username": "x", "password": "y"}',
    "lone surrogate in a value": b'{"username": "\\udfff", "password": "y", "refresh": "\\ud800"}',
    "nested too deeply": b"[" * 50_000 + b"]" * 50_000,
    "nested past the depth limit": b'{"a":' * 40 + b"1" + b"}" * 40,
    "NaN": b'{"username": NaN, "token": NaN}',
    "Infinity": b'{"username": Infinity}',
    "float overflow": b'{"username": 1e999, "items": [{"product": 1e999, "quantity": 1}]}',
    "huge integer": b'{"username": ' + b"9" * 5000 + b"}",
    "not UTF-8": b'{"username": "\xff\xfe"}',
    "control characters": b'{"username": "a\x00b", "password": "\x1b[31m"}',
}


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("kind", HOSTILE_BODIES)
def test_hostile_json_is_a_4xx_on_every_endpoint(authed: APIClient, path: str, kind: str) -> None:
    response = authed.generic("POST", path, HOSTILE_BODIES[kind], content_type="application/json")
    assert 400 <= response.status_code < 500, response.content
    body = response.json()
    assert body["success"] is False
    json.dumps(body, ensure_ascii=False).encode()  # renderable


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_only_utf8_bodies_are_accepted(authed: APIClient, path: str) -> None:
    response = authed.generic(
        "POST", path, b'{"username": "+AGEAYgBj-"}', content_type="application/json; charset=utf-7"
    )
    assert_envelope(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_thousands_of_form_fields_are_refused_not_a_500(authed: APIClient, path: str) -> None:
    body = "&".join(f"field{n}=x" for n in range(2_000))
    response = authed.generic("POST", path, body, content_type="application/x-www-form-urlencoded")
    assert_envelope(response, 415, "unsupported_media_type")


def test_thousands_of_form_fields_on_the_admin_login_are_a_400() -> None:
    body = "&".join(f"field{n}=x" for n in range(2_000))
    response = Client().generic(
        "POST", "/admin/login/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_body_over_the_limit_is_a_413_on_every_endpoint(authed: APIClient, path: str) -> None:
    body = json.dumps({"username": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE})
    response = authed.generic("POST", path, body, content_type="application/json")
    assert_envelope(response, 413, "payload_too_large")


# -- edges ---------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_to_a_slashless_api_url_is_redirected_keeping_the_method(
    settings: Any, authed: APIClient, debug: bool
) -> None:
    settings.DEBUG = debug
    response = authed.post("/api/orders?x=1", {"items": []}, format="json")
    assert response.status_code == 308
    assert response["Location"] == "/api/orders/?x=1"


def test_a_get_to_a_slashless_url_is_still_a_301(authed: APIClient) -> None:
    response = authed.get("/api/orders")
    assert (response.status_code, response["Location"]) == (301, "/api/orders/")


def test_a_disallowed_host_under_api_is_answered_in_json() -> None:
    response = Client().get("/api/products/", HTTP_HOST="evil.example")
    assert_envelope(response, 400, "disallowed_host")
    page = Client().get("/admin/login/", HTTP_HOST="evil.example")
    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/nope/", "/api/", "/api/orders/1/nope/"])
def test_an_unknown_api_url_is_a_json_404_even_in_debug(
    settings: Any, debug: bool, path: str
) -> None:
    settings.DEBUG = debug
    response = Client().get(path)
    assert_envelope(response, 404, "not_found")


def test_a_post_to_an_unknown_api_url_with_a_session_is_a_json_404(user: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert_envelope(client.post("/api/orders/nope/cancel/"), 404, "not_found")


def test_a_chunked_body_without_a_length_is_a_411() -> None:
    from orchestration.middleware import RequestBodyMiddleware

    request = RequestFactory().post("/api/orders/", b"", content_type="application/json")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
    response = RequestBodyMiddleware(lambda request: pytest.fail("reached the view"))(request)
    assert response.status_code == 411
    assert json.loads(response.content)["error"]["code"] == "length_required"


# -- authentication errors that say what is wrong -------------------------------------


def test_an_expired_access_token_says_it_expired(authed: APIClient) -> None:
    with time_machine.travel(timezone.now() + settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"] * 2):
        response = authed.get("/api/orders/")
    body = assert_envelope(response, 401, "token_not_valid")
    assert "expired" in body["error"]["message"]
    assert "refresh" in body["error"]["message"]


def test_a_forged_access_token_does_not_say_expired(user: User) -> None:
    client = APIClient()
    access = obtain_pair(client)["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access[:-4]}AAAA")
    body = assert_envelope(client.get("/api/orders/"), 401, "token_not_valid")
    assert "expired" not in body["error"]["message"]


@pytest.mark.parametrize("header", ["Token abc.def.ghi", "abc.def.ghi", "Basic dXNlcjpwYXNz"])
def test_a_header_without_the_bearer_scheme_says_so(header: str) -> None:
    response = Client().get("/api/orders/", HTTP_AUTHORIZATION=header)
    body = assert_envelope(response, 401, "bad_authorization_header")
    assert "Bearer" in body["error"]["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_the_catalogue_stays_public_without_a_header() -> None:
    Product.objects.create(sku="PUB-1", name="Public", price="1.00", stock=1)
    assert Client().get("/api/products/").status_code == 200
