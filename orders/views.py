"""The orders API: plain DRF for reads, the orchestrators for placing and cancelling."""

from __future__ import annotations

import dataclasses
import json
import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.db.models import QuerySet, prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, generics, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from orchestration import OrchestratorResult, StepError
from orchestration.drf import (
    envelope,
    envelope_response,
    error_body,
    error_responses,
    orchestrated_schema,
)
from orders import idempotency
from orders.models import ORDER_NOT_FOUND, Order, Product
from orders.orchestrators import AsyncQuote, CancelOrder, CreateOrder, Quote
from orders.pagination import StrictPageNumberPagination
from orders.serializers import (
    MAX_ID,
    CreateOrderSerializer,
    OrderSerializer,
    ProductSerializer,
    QuoteResultSerializer,
    QuoteSerializer,
)
from orders.types import CancelOrderInput, CreateOrderInput, QuoteInput

CREATE_DESCRIPTION = """\
Places an order for the signed-in user and pays it. Prices and the total are
computed by the server; sending them is a 400. A body larger than 256 KiB is
answered with 413 and a body that is not JSON with 400 (malformed) or 415
(another content type), in the same error shape.

Send an `Idempotency-Key` header to make retries safe: the same key with the
same body returns the first response (status and body, with the header
`Idempotent-Replayed: true`) and creates nothing new. A replayed body keeps the
`request_id` of the request that placed the order, which finds that run in the logs;
the `X-Request-ID` header is the replaying request's own. The same key with another
body is a 409 `idempotency_key_reused`. A key is consumed only by a request
that succeeded, so a request that failed (declined card, out of stock,
gateway unavailable) can be retried with the same key.

A placed order is always answered 201. If building the answer fails after the
order was committed (the database went away, for example), `data` holds only
the order's `id`, `status` and `total` and `warnings` holds a
`response_incomplete` warning: the full order is at `GET /api/orders/{id}/`,
and a retry with the same `Idempotency-Key` returns it."""

QUOTE_DESCRIPTION = """\
Prices a cart delivered to a country without placing an order: the goods at
catalogue prices, the carrier's shipping price and the VAT on the goods. The
carrier and the tax service are asked at the same time (a parallel group), so
the answer takes about as long as the slower of the two, not their sum. Open to
anyone: no token is needed. `POST /api/orders/quote/async/` gives the same
answer from an async view, for an ASGI server."""

CANCEL_DESCRIPTION = """\
Cancels one of the signed-in user's paid orders: the stock is put back and the
charge refunded. Another user's order is a 404; an order that is not paid
(already cancelled) is a 409 `order_not_cancellable`."""


logger = logging.getLogger("orders")

#: The warning of a 201 whose body could not be built in full after the commit.
RESPONSE_INCOMPLETE = "response_incomplete"

#: Ids are positive: the URL patterns match digits only, so anything else is not a route.
ID_PARAMETER = OpenApiParameter(
    "id", {"type": "integer", "minimum": 1, "maximum": MAX_ID}, OpenApiParameter.PATH
)


def render_order_result(
    result: OrchestratorResult[Any], *, success_status: int = status.HTTP_200_OK
) -> Response:
    """The envelope, with the order serialized as ``data`` on success."""
    if result.success and result.data is not None:
        order = result.data
        prefetch_related_objects([order], "items__product")
        result = dataclasses.replace(result, data=OrderSerializer(order).data)
    return envelope_response(result, success_status=success_status)


def render_placed_order(result: OrchestratorResult[Any]) -> Response:
    """201 for a committed order, even when its full body cannot be built any more."""
    try:
        return render_order_result(result, success_status=status.HTTP_201_CREATED)
    except Exception:
        order = result.data
        assert order is not None  # a successful CreateOrder run returns its order
        logger.exception("order %s was placed, but its response could not be built", order.pk)
        warning = StepError(
            step="respond",
            code=RESPONSE_INCOMPLETE,
            message=(
                f"The order was placed, but its details could not be loaded: "
                f"GET /api/orders/{order.pk}/ shows it, as does a retry with the same "
                "Idempotency-Key."
            ),
        )
        data = {"id": order.pk, "status": order.status, "total": str(order.total)}
        partial = dataclasses.replace(result, data=data, warnings=[*result.warnings, warning])
        return envelope_response(partial, success_status=status.HTTP_201_CREATED)


class OrderListCreateView(generics.ListAPIView):
    """The signed-in user's orders (newest first, paginated); POST places one."""

    name = "Your orders"  # the browsable API's page title

    serializer_class = OrderSerializer
    pagination_class = StrictPageNumberPagination

    def get_queryset(self) -> QuerySet[Order]:
        return Order.objects.filter(owner_id=self.request.user.pk).prefetch_related(
            "items__product"
        )

    def get_serializer_class(self) -> type[BaseSerializer]:
        # The browsable API builds its form from this.
        if self.request is not None and self.request.method == "POST":
            return CreateOrderSerializer
        return OrderSerializer

    @extend_schema(
        summary="List your orders",
        # 400: a page number that is not a positive integer; 404: one past the last page.
        responses={200: OrderSerializer(many=True), **error_responses(400, 401, 404)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @orchestrated_schema(
        CreateOrder,
        data=OrderSerializer,
        request=CreateOrderSerializer,
        success_status=status.HTTP_201_CREATED,
        errors=(400, 401, 402, 409, 413, 415, 503, 500),
        summary="Place an order",
        description=CREATE_DESCRIPTION,
        parameters=[
            OpenApiParameter(
                idempotency.HEADER,
                {
                    "type": "string",
                    "pattern": idempotency.WELL_FORMED_KEY.pattern,
                    "minLength": 1,
                    "maxLength": idempotency.MAX_KEY_LENGTH,
                },
                OpenApiParameter.HEADER,
                description="Optional client-chosen key (1 to 255 visible ASCII characters, "
                "a UUID for example) that makes retries of this request safe.",
            )
        ],
    )
    def post(self, request: Request) -> Response:
        order_input = CreateOrderInput(
            data=request.data, idempotency_key=idempotency.read_idempotency_key(request)
        )
        key = order_input.idempotency_key
        if key is not None:
            stored = idempotency.find_stored_response(request.user, key, order_input.fingerprint)
            if stored is not None:
                return stored
        result = CreateOrder().execute(order_input, user=request.user, idempotency_key=key)
        if not result.success:
            return render_order_result(result)
        response = render_placed_order(result)
        complete = all(w["code"] != RESPONSE_INCOMPLETE for w in response.data["warnings"])
        if key is not None and complete:
            try:
                idempotency.store_response(request.user, key, response)
            except DatabaseError:
                # The key was linked to the order in its transaction: a retry rebuilds this.
                logger.warning("the response of order %s was not stored for replay", result.data)
        return response


@extend_schema(
    summary="One of your orders",
    parameters=[ID_PARAMETER],
    responses={200: OrderSerializer, **error_responses(401, 404)},
)
class OrderDetailView(generics.RetrieveAPIView):
    name = "Your order"  # the browsable API's page title
    serializer_class = OrderSerializer

    def get_object(self) -> Order:
        try:
            return super().get_object()
        except Http404:
            raise exceptions.NotFound(ORDER_NOT_FOUND) from None

    def get_queryset(self) -> QuerySet[Order]:
        # Another user's order is a 404: its existence is not disclosed.
        return Order.objects.filter(owner_id=self.request.user.pk).prefetch_related(
            "items__product"
        )


class CancelOrderView(APIView):
    name = "Cancel your order"  # the browsable API's page title

    @orchestrated_schema(
        CancelOrder,
        data=OrderSerializer,
        errors=(401, 404, 409, 503, 500),
        summary="Cancel an order",
        description=CANCEL_DESCRIPTION,
        parameters=[ID_PARAMETER],
    )
    def post(self, request: Request, pk: int) -> Response:
        result = CancelOrder().execute(CancelOrderInput(order_id=pk), user=request.user)
        return render_order_result(result)


def quote_body(result: OrchestratorResult[Any]) -> dict[str, Any]:
    """The envelope of a quote, amounts as decimal strings."""
    if result.success and result.data is not None:
        result = dataclasses.replace(result, data=QuoteResultSerializer(result.data).data)
    return envelope(result)


class QuoteView(APIView):
    permission_classes = (permissions.AllowAny,)

    @orchestrated_schema(
        Quote,
        data=QuoteResultSerializer,
        request=QuoteSerializer,
        errors=(400, 413, 415, 503, 500),
        summary="Quote a cart",
        description=QUOTE_DESCRIPTION,
        auth=[],
    )
    def post(self, request: Request) -> Response:
        user = request.user if request.user.is_authenticated else None
        result = Quote().execute(QuoteInput(data=request.data), user=user)
        return Response(quote_body(result), status=result.status_code)


@csrf_exempt
async def quote_async(request: HttpRequest) -> HttpResponse:
    """``QuoteView`` as an async view: the pipeline is awaited (``aexecute``)."""
    if request.method != "POST":
        body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        return JsonResponse(body, status=405, headers={"Allow": "POST"})
    if request.content_type != "application/json":
        body = error_body("unsupported_media_type", "Send the body as application/json.")
        return JsonResponse(body, status=415)
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:
        return JsonResponse(error_body("payload_too_large", "The body is too large."), status=413)
    except (ValueError, RecursionError):
        return JsonResponse(error_body("parse_error", "The body is not valid JSON."), status=400)
    result = await AsyncQuote().aexecute(QuoteInput(data=data))
    return JsonResponse(quote_body(result), status=result.status_code)


class ProductCatalogueView(generics.GenericAPIView):
    """The catalogue is public: anyone may read the products on sale."""

    permission_classes = (permissions.AllowAny,)
    serializer_class = ProductSerializer
    queryset = Product.objects.filter(active=True)


@extend_schema(
    summary="Products on sale",
    responses={200: ProductSerializer(many=True), **error_responses(400, 401, 404)},
)
class ProductListView(ProductCatalogueView, generics.ListAPIView):
    name = "Products on sale"  # the browsable API's page title
    pagination_class = StrictPageNumberPagination


@extend_schema(
    summary="One product on sale",
    parameters=[ID_PARAMETER],
    responses={200: ProductSerializer, **error_responses(401, 404)},
)
class ProductDetailView(ProductCatalogueView, generics.RetrieveAPIView):
    name = "Product"  # the browsable API's page title
