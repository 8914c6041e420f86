"""Typed failures, and the one place that classifies any exception as one of them.

A step fails by raising. Raising one of these classes says what went wrong in a
way the API can show to a client: a stable ``code``, a message, optional
``details`` (field errors, for example) and the HTTP ``status`` it maps to.
``classify`` turns any other exception into one of them: Django's own errors
into their typed twins, and anything unexpected into ``internal_error``, logged
with its traceback and reported to clients without internals. The engine, the
DRF exception handler and the project's error views all answer through it.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core import exceptions as django_exceptions
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404, UnreadablePostError
from django.http.multipartparser import MultiPartParserError

from orchestration.context import current_request_id

logger = logging.getLogger("orchestration")


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


class BadRequest(OrchestrationError):
    """A request the framework could not read: malformed, not UTF-8, too many fields."""

    status = 400
    code = "bad_request"
    default_message = "The request is malformed."


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


class TransactionConflict(Conflict):
    """The database aborted the transaction to break a deadlock or a serialization conflict.

    Nothing of the request was written; the same request can be sent again.
    """

    code = "transaction_conflict"
    default_message = (
        "The request collided with a concurrent one and was rolled back; send it again."
    )


class PayloadTooLarge(OrchestrationError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


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


#: SQLSTATEs of a transaction the database aborted because of concurrent ones.
TRANSACTION_CONFLICT_STATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def is_transaction_conflict(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the transaction is safe to run again."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause, "sqlstate", None) in TRANSACTION_CONFLICT_STATES


def classify(exc: BaseException | None, *, where: str, log: bool = True) -> OrchestrationError:
    """The typed error that tells a client what ``exc`` means.

    ``where`` (a step, a view) names the failure's place in the log record of
    an unexpected exception, which is logged here with its traceback (unless
    ``log`` is false: the caller has logged it); a lost database is logged as
    a warning.
    """
    if isinstance(exc, OrchestrationError):
        return exc
    if isinstance(exc, django_exceptions.ObjectDoesNotExist | Http404):
        return NotFound()
    if isinstance(exc, django_exceptions.PermissionDenied):
        return PermissionDenied()
    if isinstance(exc, django_exceptions.ValidationError):
        details = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        return ValidationFailed(details=details)
    framework = None if exc is None else _classify_request_error(exc)
    if framework is not None:
        return framework
    if exc is not None and is_transaction_conflict(exc):
        logger.warning("%s: transaction aborted by the database: %s", where, exc)
        return TransactionConflict()
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("%s: database unavailable: %s", where, exc)
        return DatabaseUnavailable()
    if log and exc is not None:
        logger.error(
            "%s failed with an unexpected error",
            where,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    return internal_error(current_request_id.get() or "-")


def _classify_request_error(exc: BaseException) -> OrchestrationError | None:
    """Django's refusals of a request it cannot read, as 4xx errors."""
    if isinstance(exc, django_exceptions.RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, django_exceptions.TooManyFieldsSent | django_exceptions.TooManyFilesSent):
        return BadRequest(str(exc), code="too_many_fields")
    if isinstance(exc, django_exceptions.DisallowedHost):
        return BadRequest(
            "The Host header names a host this server does not serve.", code="disallowed_host"
        )
    if isinstance(exc, UnicodeError):
        return BadRequest("The request is not valid UTF-8.", code="invalid_encoding")
    if isinstance(exc, UnreadablePostError):
        return BadRequest("The request body could not be read to its end.", code="unreadable_body")
    if isinstance(
        exc,
        django_exceptions.SuspiciousOperation | django_exceptions.BadRequest | MultiPartParserError,
    ):
        return BadRequest()
    return None


class DefinitionError(TypeError):
    """An orchestrator or step is declared wrongly (raised at class definition)."""
