"""One classifier of exceptions, used by the engine, the DRF handler and the error views."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.core import exceptions as django_exceptions
from django.db import OperationalError, connections
from django.http import Http404, UnreadablePostError
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestration import (
    BaseOrchestrator,
    Conflict,
    NotFound,
    OperationContext,
    PaymentRequired,
    Step,
)
from orchestration import views as ops_views
from orchestration.errors import classify
from orchestration.testing import isolated_registry

pytestmark = pytest.mark.urls(__name__)


def database_error(state_error: type[Exception]) -> OperationalError:
    """Django's wrapper around a psycopg error, as the ORM raises it."""
    error = OperationalError("the database said no")
    error.__cause__ = state_error("the database said no")
    return error


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (Conflict("taken"), 409, "conflict"),
        (Group.DoesNotExist(), 404, "not_found"),
        (Http404(), 404, "not_found"),
        (django_exceptions.PermissionDenied(), 403, "permission_denied"),
        (django_exceptions.ValidationError({"name": ["bad"]}), 400, "validation_failed"),
        (django_exceptions.RequestDataTooBig(), 413, "payload_too_large"),
        (django_exceptions.TooManyFieldsSent("too many"), 400, "too_many_fields"),
        (django_exceptions.DisallowedHost("evil.example"), 400, "disallowed_host"),
        (django_exceptions.SuspiciousOperation("odd"), 400, "bad_request"),
        (
            UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
            400,
            "invalid_encoding",
        ),
        (UnreadablePostError("client went away"), 400, "unreadable_body"),
        (database_error(psycopg.errors.DeadlockDetected), 409, "transaction_conflict"),
        (database_error(psycopg.errors.SerializationFailure), 409, "transaction_conflict"),
        (database_error(psycopg.errors.AdminShutdown), 503, "database_unavailable"),
        (OperationalError("database is locked"), 503, "database_unavailable"),
        (KeyError("secret"), 500, "internal_error"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_classify_gives_each_exception_its_status_and_code(
    exc: BaseException, status: int, code: str
) -> None:
    typed = classify(exc, where="test")
    assert (typed.status, typed.code) == (status, code)


def test_an_unexpected_exception_is_logged_with_its_traceback_where_it_happened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="orchestration"):
        typed = classify(KeyError("hunter2"), where="view Crash")
    assert "hunter2" not in typed.message
    [record] = caplog.records
    assert record.getMessage() == "view Crash failed with an unexpected error"
    assert record.exc_info is not None


# -- the same answers from an ordinary DRF view, a pipeline and a plain Django view -----


class RaisingView(APIView):
    permission_classes = (AllowAny,)
    raised: BaseException = NotFound()

    def post(self, request: Request) -> Response:
        Group.objects.create(name="written before the failure")
        raise self.raised


def fail_with_input(ctx: OperationContext) -> OperationContext:
    raise ctx.metadata["raise"]


with isolated_registry():  # out of what commands list and dashboards show

    class FailingPipeline(BaseOrchestrator[OperationContext, None, BaseException]):
        pipeline = (Step("fail", fail_with_input),)

        def initialize_context(self, input: BaseException, **kwargs: Any) -> OperationContext:
            return OperationContext(metadata={"raise": input}, **kwargs)

        def build_result(self, ctx: OperationContext) -> None:
            return None


def plain_view(request: Any) -> Any:
    raise database_error(psycopg.errors.AdminShutdown)


urlpatterns = [
    path("api/raising/", RaisingView.as_view()),
    path("api/plain/", plain_view),
]
handler500 = ops_views.server_error


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raised", "status", "code"),
    [
        (NotFound(), 404, "not_found"),
        (Conflict("Already done.", code="already_done"), 409, "already_done"),
        (PaymentRequired(), 402, "payment_declined"),
        (database_error(psycopg.errors.DeadlockDetected), 409, "transaction_conflict"),
    ],
)
def test_a_typed_error_raised_in_a_drf_view_gets_its_own_status(
    client: Any, raised: BaseException, status: int, code: str
) -> None:
    with mock.patch.object(RaisingView, "raised", raised):
        response = client.post("/api/raising/")
    assert response.status_code == status
    body = response.json()
    assert (body["success"], body["error"]["code"]) == (False, code)
    assert body["request_id"] == response["X-Request-ID"]
    # The engine answers the same exception with the same code and status.
    result = FailingPipeline().execute(raised)
    assert result.error is not None
    assert (result.error.status, result.error.code) == (status, code)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raised", [Conflict("Already done."), RuntimeError("unexpected")])
def test_the_drf_handler_rolls_the_request_back(client: Any, raised: BaseException) -> None:
    settings_dict = connections["default"].settings_dict
    with (
        mock.patch.dict(settings_dict, {"ATOMIC_REQUESTS": True}),
        mock.patch.object(RaisingView, "raised", raised),
    ):
        response = client.post("/api/raising/")
    assert response.status_code in (409, 500)
    assert not Group.objects.exists()


@pytest.mark.django_db
def test_handler500_classifies_the_exception_too(client: Any) -> None:
    client.raise_request_exception = False
    response = client.get("/api/plain/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
