"""URL configuration.

Every local app (``config/local_apps.py``) with a ``urls`` module is mounted
under ``/api/``; apps declare their own paths below that.
"""

from importlib.util import find_spec
from typing import Any

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.utils import (
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt import views as jwt_views

import config.schema  # noqa: F401 (registers the schema extension for string fields)
from config.clients import client_ip
from config.local_apps import LOCAL_APPS
from config.lockout import cool_off_seconds, lockout_body
from config.views import OfflineRedocView, favicon
from orchestration import views as ops_views
from orchestration.drf import error_responses

handler400 = ops_views.bad_request
handler403 = ops_views.permission_denied
handler404 = ops_views.not_found
handler500 = ops_views.server_error


#: What the obtain and refresh endpoints answer (refresh tokens rotate, so both send both).
TOKEN_PAIR_SERIALIZER = inline_serializer(
    name="TokenPair",
    fields={
        "access": serializers.CharField(
            help_text="Access token (a JWT): send it as `Authorization: Bearer <access>`."
        ),
        "refresh": serializers.CharField(
            help_text="Refresh token: exchange it at /api/auth/token/refresh/ for a new pair. "
            "Each refresh token is used once: the exchange revokes it."
        ),
    },
)
TOKEN_PAIR = OpenApiResponse(TOKEN_PAIR_SERIALIZER, description="A new token pair.")
#: What verify and blacklist answer when they succeed: an empty JSON object.
EMPTY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": False}
TOKEN_VALID = OpenApiResponse(EMPTY_OBJECT, description="The token is valid: `{}`.")
TOKEN_REVOKED = OpenApiResponse(EMPTY_OBJECT, description="The refresh token is revoked: `{}`.")


def documented(
    view: type[jwt_views.TokenViewBase],
    summary: str,
    success: OpenApiResponse,
    *errors: int,
) -> type[jwt_views.TokenViewBase]:
    """A subclass of a token view whose schema has a summary, documents its answer and
    lists its error answers; the summary also titles its page in the browsable API."""
    subclass = type(view.__name__, (view,), {"__module__": __name__, "name": summary})
    return extend_schema_view(
        post=extend_schema(summary=summary, responses={200: success, **error_responses(*errors)})
    )(subclass)


class ClientRateThrottle(ScopedRateThrottle):
    """DRF's scoped throttle, counting per client as the trusted proxies report it."""

    def get_ident(self, request: Request) -> str:
        return client_ip(request)


class ThrottledTokenObtainPairView(jwt_views.TokenObtainPairView):
    """Obtain a token pair; throttled per client, and locked out per username and
    client after too many wrong passwords (django-axes)."""

    throttle_classes = (ClientRateThrottle,)
    throttle_scope = "token"

    def handle_exception(self, exc: Exception) -> Response:
        # Axes flags the request it was given, DRF's, which its middleware never sees.
        if getattr(self.request, "axes_locked_out", False):
            headers = {"Retry-After": str(cool_off_seconds())}
            return Response(lockout_body(), status=429, headers=headers)
        return super().handle_exception(exc)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", ops_views.health, name="health"),
    path("ready/", ops_views.ready, name="ready"),
    path("metrics", ops_views.metrics, name="metrics"),
    path(
        "api/auth/token/",
        documented(
            ThrottledTokenObtainPairView,
            "Obtain an access and a refresh token with a username and password",
            TOKEN_PAIR,
            400,
            401,
            413,
            415,
            429,
        ).as_view(),
        name="token_obtain_pair",
    ),
    path(
        "api/auth/token/refresh/",
        documented(
            jwt_views.TokenRefreshView,
            "Exchange a refresh token for a new access token (and a new refresh token)",
            TOKEN_PAIR,
            400,
            401,
            413,
            415,
        ).as_view(),
        name="token_refresh",
    ),
    path(
        "api/auth/token/verify/",
        documented(
            jwt_views.TokenVerifyView,
            "Check that a token is valid",
            TOKEN_VALID,
            400,
            401,
            413,
            415,
        ).as_view(),
        name="token_verify",
    ),
    path(
        "api/auth/token/blacklist/",
        documented(
            jwt_views.TokenBlacklistView,
            "Revoke a refresh token (sign out)",
            TOKEN_REVOKED,
            400,
            401,
            413,
            415,
        ).as_view(),
        name="token_blacklist",
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("documentation/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", OfflineRedocView.as_view(url_name="schema"), name="redoc"),
    path("favicon.ico", favicon, name="favicon"),
    path("api-auth/", include("rest_framework.urls")),
]

urlpatterns += [
    path("api/", include(f"{app}.urls"))
    for app in LOCAL_APPS
    if find_spec(f"{app}.urls") is not None
]

# Last: any other URL under /api/ is a 404 in the API's error shape, also with DEBUG on.
# Only paths ending in a slash, so that /api/orders still redirects to /api/orders/.
urlpatterns.append(re_path(r"^api/(?:.*/)?$", ops_views.api_not_found))
