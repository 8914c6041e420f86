"""The project itself as an app: its signal receivers, templates and cache table."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


def create_cache_table(using: str, **kwargs: Any) -> None:
    """``migrate`` also creates the database cache's table (a no-op when it exists or
    when another cache backend is configured), so no deployment forgets it."""
    call_command("createcachetable", database=using, verbosity=0)


class ProjectConfig(AppConfig):
    name = "config"
    label = "project"
    verbose_name = "Project"

    def ready(self) -> None:
        from config.auth import connect_session_signals

        connect_session_signals()
        post_migrate.connect(create_cache_table, sender=self, dispatch_uid="create-cache-table")
