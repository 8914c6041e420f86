"""Declared pipelines of operations over a typed context.

The public API is what this module exports; DRF glue lives in
``orchestration.drf`` and test helpers in ``orchestration.testing``.
"""

from orchestration.context import OperationContext, StepError
from orchestration.engine import BaseOrchestrator
from orchestration.errors import (
    Conflict,
    DatabaseUnavailable,
    DefinitionError,
    InternalError,
    NotAuthenticated,
    NotFound,
    OrchestrationError,
    PaymentRequired,
    PermissionDenied,
    ServiceUnavailable,
    StepTimeout,
    ValidationFailed,
)
from orchestration.result import OrchestratorResult, StepRecord
from orchestration.steps import Parallel, Retry, Step

__all__ = [
    "BaseOrchestrator",
    "Conflict",
    "DatabaseUnavailable",
    "DefinitionError",
    "InternalError",
    "NotAuthenticated",
    "NotFound",
    "OperationContext",
    "OrchestrationError",
    "OrchestratorResult",
    "Parallel",
    "PaymentRequired",
    "PermissionDenied",
    "Retry",
    "ServiceUnavailable",
    "Step",
    "StepError",
    "StepRecord",
    "StepTimeout",
    "ValidationFailed",
]
