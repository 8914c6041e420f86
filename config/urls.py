"""URL configuration.

Every local app (``config/local_apps.py``) with a ``urls`` module is mounted
under ``/api/``; apps declare their own paths below that.
"""

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.throttling import ScopedRateThrottle
from rest_framework_simplejwt import views as jwt_views

from config.local_apps import LOCAL_APPS
from orchestration import views as ops_views


class ThrottledTokenObtainPairView(jwt_views.TokenObtainPairView):
    """Obtain a token pair; throttled per client to slow password guessing."""

    throttle_classes = (ScopedRateThrottle,)
    throttle_scope = "token"


urlpatterns = [
    path("admin/", admin.site.urls),
    path("health/", ops_views.health, name="health"),
    path("ready/", ops_views.ready, name="ready"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("api/auth/token/", ThrottledTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", jwt_views.TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/token/verify/", jwt_views.TokenVerifyView.as_view(), name="token_verify"),
    path(
        "api/auth/token/blacklist/", jwt_views.TokenBlacklistView.as_view(), name="token_blacklist"
    ),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("documentation/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("api-auth/", include("rest_framework.urls")),
]

urlpatterns += [
    path("api/", include(f"{app}.urls"))
    for app in LOCAL_APPS
    if find_spec(f"{app}.urls") is not None
]
