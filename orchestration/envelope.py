"""The error envelope of an answer outside any pipeline, without DRF.

``orchestration.drf`` renders pipelines' results; the project's error views
(``orchestration.views``) and the DRF exception handler answer failures
outside a pipeline in this same shape.
"""

from __future__ import annotations

from typing import Any

from orchestration.context import current_request_id, new_request_id
from orchestration.errors import OrchestrationError


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape of a failure outside any pipeline (``step`` is null)."""
    return {
        "success": False,
        "error": {"step": None, "code": code, "message": message, "details": details or {}},
        "request_id": current_request_id.get() or new_request_id(),
    }


def typed_error_body(error: OrchestrationError) -> dict[str, Any]:
    """``error_body`` for a typed error: its code, message and details."""
    return error_body(error.code, error.message, error.details)
