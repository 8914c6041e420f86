"""Typed step failures and definition errors.

A step fails by raising. Raising one of these classes says what went wrong in a
way the API can show to a client: a stable ``code``, a message, optional
``details`` (field errors, for example) and the HTTP ``status`` it maps to. Any
other exception is an internal error: logged with its traceback and reported to
clients as ``internal_error`` without internals.
"""

from __future__ import annotations

from typing import Any


class OrchestrationError(Exception):
    """Base of every expected step failure."""

    status: int = 500
    code: str = "error"
    default_message: str = "The request could not be completed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(OrchestrationError):
    status = 400
    code = "validation_failed"
    default_message = "The input is invalid."


class NotAuthenticated(OrchestrationError):
    status = 401
    code = "not_authenticated"
    default_message = "Authentication credentials were not provided or are invalid."


class PaymentRequired(OrchestrationError):
    status = 402
    code = "payment_declined"
    default_message = "The payment was declined."


class PermissionDenied(OrchestrationError):
    status = 403
    code = "permission_denied"
    default_message = "You do not have permission to perform this action."


class NotFound(OrchestrationError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(OrchestrationError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class ServiceUnavailable(OrchestrationError):
    status = 503
    code = "service_unavailable"
    default_message = "A service this request depends on is unavailable; try again later."


class DatabaseUnavailable(ServiceUnavailable):
    """The database connection failed or was lost (Django's OperationalError)."""

    code = "database_unavailable"
    default_message = "The database is unavailable; try again later."


class StepTimeout(OrchestrationError):
    """A step returned after its time budget was spent."""

    status = 503
    code = "timeout"
    default_message = "The step took longer than its time budget."


class InternalError(OrchestrationError):
    status = 500
    code = "internal_error"
    default_message = "An internal error occurred."


def internal_error(request_id: str) -> InternalError:
    """What a client learns of an unexpected exception: the id that finds it in the logs."""
    return InternalError(f"An internal error occurred (request id {request_id}).")


class DefinitionError(TypeError):
    """An orchestrator or step is declared wrongly (raised at class definition)."""
