"""The scaffolder behind `manage.py generate` and the `orchestrators` listing.

``plan_service`` and ``plan_operation`` return a ``Plan``: every file change,
checked for clashes before anything is written. ``Plan.describe`` is the
dry run, ``Plan.write`` applies it.
"""

from orchestration.scaffold.names import ScaffoldError
from orchestration.scaffold.operation import plan_operation
from orchestration.scaffold.plan import Outcome, Plan
from orchestration.scaffold.service import ServiceSpec, plan_service

__all__ = ["Outcome", "Plan", "ScaffoldError", "ServiceSpec", "plan_operation", "plan_service"]
