"""A urlconf of small orchestrated views for the middleware and DRF glue tests."""

from __future__ import annotations

from django.urls import path
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from orchestration import PaymentRequired, Retry, ServiceUnavailable, Step
from orchestration.drf import envelope_response, orchestrated_schema
from tests.orchestration.pipelines import create_group, fail_with, make_orchestrator

Register = make_orchestrator(
    "RegisterGroups",
    [
        Step("validate", lambda ctx: ctx),
        Step("create", create_group("web"), retry=Retry(attempts=2)),
        Step(
            "notify", fail_with(ServiceUnavailable("mail down")), critical=False, after_commit=True
        ),
    ],
)
Declined = make_orchestrator(
    "DeclinedGroups",
    [Step("validate", lambda ctx: ctx), Step("charge", fail_with(PaymentRequired("declined")))],
)


class GroupNamesSerializer(serializers.Serializer):
    names = serializers.ListField(child=serializers.CharField())


@orchestrated_schema(Register, data=GroupNamesSerializer, success_status=201, errors=(400, 402))
@api_view(["POST"])
@permission_classes([AllowAny])
def register(request: Request) -> Response:
    result = Register().execute([], user=request.user)
    return envelope_response(result, success_status=201)


@api_view(["POST"])
@permission_classes([AllowAny])
def declined(request: Request) -> Response:
    return envelope_response(Declined().execute([]), success_status=201)


@api_view(["POST"])
@permission_classes([AllowAny])
def parse(request: Request) -> Response:
    return Response({"received": request.data})


@api_view(["GET"])
@permission_classes([AllowAny])
def crash(request: Request) -> Response:
    raise RuntimeError("password=hunter2")


urlpatterns = [
    path("register/", register),
    path("declined/", declined),
    path("parse/", parse),
    path("crash/", crash),
]
