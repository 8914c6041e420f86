"""What a client locked out by django-axes is told: a 429, in JSON under /api/."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from orchestration.envelope import error_body
from orchestration.views import API_PREFIX


def cool_off_seconds() -> int:
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_message() -> str:
    minutes = max(1, round(cool_off_seconds() / 60))
    return (
        "Too many failed login attempts for this account from this address; "
        f"try again in {minutes} minutes or ask an administrator to unlock it."
    )


def lockout_body() -> dict[str, Any]:
    """The error envelope of a lockout."""
    return error_body("locked_out", lockout_message(), {"retry_after_seconds": cool_off_seconds()})


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: too many failed logins for this username from this address."""
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(lockout_body(), status=429)
    else:
        response = render(request, "lockout.html", {"message": lockout_message()}, status=429)
    response["Retry-After"] = str(cool_off_seconds())
    return response
