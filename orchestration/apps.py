from django.apps import AppConfig
from django.core.signals import request_finished, request_started
from django.utils.module_loading import autodiscover_modules


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Import every app's `orchestrators` module so that the registry is
        # complete for commands (dashboards, listings) and schema generation.
        autodiscover_modules("orchestrators")

        from orchestration import journal

        # The journal's own connections follow CONN_MAX_AGE like Django's.
        request_started.connect(journal.close_stale_connections)
        request_finished.connect(journal.close_stale_connections)
