"""Project pages that are not part of an app: the favicon and the offline ReDoc page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularRedocView
from rest_framework.request import Request
from rest_framework.response import Response

FAVICON = Path(__file__).resolve().parent / "favicon.ico"

#: ReDoc's bundle draws a logo from the vendor's CDN in its menu footer; this policy keeps
#: the browser from fetching it (the image then hides itself), or anything else off-site.
REDOC_CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
    )
)


@require_GET
@cache_control(max_age=60 * 60 * 24 * 7, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on every page (admin, API, documentation)."""
    return HttpResponse(FAVICON.read_bytes(), content_type="image/vnd.microsoft.icon")


class OfflineRedocView(SpectacularRedocView):
    """ReDoc from the sidecar's files only, without web fonts or the vendor's logo."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response["Content-Security-Policy"] = REDOC_CONTENT_SECURITY_POLICY
        return response
