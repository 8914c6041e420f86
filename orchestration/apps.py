from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class OrchestrationConfig(AppConfig):
    name = "orchestration"
    verbose_name = "Orchestration"

    def ready(self) -> None:
        # Import every app's `orchestrators` module so that the registry is
        # complete for commands (dashboards, listings) and schema generation.
        autodiscover_modules("orchestrators")
        from orchestration import checks  # noqa: F401  (registers the system checks)
