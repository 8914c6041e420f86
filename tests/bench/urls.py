"""The project's URLs plus the hand-written baseline of the end-to-end benchmark."""

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from tests.bench.inline_orders import InlineCreateOrderView

urlpatterns = [
    *project_urlpatterns,
    path("api/bench/inline-orders/", InlineCreateOrderView.as_view(), name="bench-inline-orders"),
]
