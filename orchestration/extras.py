"""Optional parts of the app and the extra that installs each.

The core needs Django and prometheus_client only. A module that needs more
calls ``require`` before importing it, so that using it without its extra
says what to install instead of failing on a bare ``ModuleNotFoundError``.
"""

from __future__ import annotations

import importlib.util

DISTRIBUTION = "django-orchestration"


class MissingExtra(ImportError):
    """A feature was used without the extra that installs its dependencies."""


def require(extra: str, *modules: str, feature: str) -> None:
    """Raise ``MissingExtra`` naming ``extra`` when one of ``modules`` is not installed."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        raise MissingExtra(
            f"{feature} needs the [{extra}] extra ({', '.join(missing)} not installed): "
            f"pip install '{DISTRIBUTION}[{extra}]'",
            name=missing[0],
        )
