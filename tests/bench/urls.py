"""The project's URLs plus the three other versions of CreateOrder the end-to-end benchmark runs."""

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from tests.bench.dbos_orders import DBOSCreateOrderView
from tests.bench.durable_orders import DurableCreateOrderView
from tests.bench.inline_orders import InlineCreateOrderView

#: Before the project's own: those end with the JSON 404 for any other ``/api/`` path.
urlpatterns = [
    path("api/bench/inline-orders/", InlineCreateOrderView.as_view(), name="bench-inline-orders"),
    path(
        "api/bench/durable-orders/", DurableCreateOrderView.as_view(), name="bench-durable-orders"
    ),
    path("api/bench/dbos-orders/", DBOSCreateOrderView.as_view(), name="bench-dbos-orders"),
    *project_urlpatterns,
]
