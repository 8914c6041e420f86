from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.module_loading import autodiscover_modules


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Import every app's `orchestrators` module so that the registry is
        # complete for commands (dashboards, listings) and schema generation.
        autodiscover_modules("orchestrators")
        from orchestration import checks  # noqa: F401  (registers the system checks)
        from orchestration.parallel import guard_connection

        # Steps of a parallel group may not query: each new connection refuses them.
        connection_created.connect(guard_connection, dispatch_uid="orchestration.parallel")
