"""What a client locked out by django-axes is told: a 429, in JSON under /api/."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from orchestration.errors import error_body
from orchestration.views import API_PREFIX


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: too many failed logins for this username from this address."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = max(1, round(seconds / 60))
    message = (
        f"Too many failed login attempts for this account from this address; "
        f"try again in {minutes} minutes or ask an administrator to unlock it."
    )
    if request.path.startswith(API_PREFIX):
        response: HttpResponse = JsonResponse(
            error_body("locked_out", message, {"retry_after_seconds": seconds}), status=429
        )
    else:
        response = render(request, "lockout.html", {"message": message}, status=429)
    response["Retry-After"] = str(seconds)
    return response
