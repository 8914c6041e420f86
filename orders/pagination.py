"""Page numbers as the schema states them: one positive integer, or no ``page`` at all."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from rest_framework import exceptions, pagination
from rest_framework.request import Request

PAGE_NUMBER_HELP = "A page number: a positive integer (1 when left out)."

#: A page number with more digits than this is past the last page of any table.
PAST_ANY_PAGE = 18


class StrictPageNumberPagination(pagination.PageNumberPagination):
    """DRF's page numbers, without its leniency: an empty ``?page=`` (and so
    ``?page=false&page=``, whose last value counts) is not page 1, ``last`` is not
    a number, and ``page`` is given once. Each of those is a 400 in the error shape;
    a number past the last page stays DRF's 404."""

    last_page_strings = ()

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        if len(values) > 1:
            raise exceptions.ValidationError({self.page_query_param: ["Give one page number."]})
        [value] = values
        digits = value.lstrip("0")
        if not (value.isascii() and value.isdecimal()) or not digits:
            raise exceptions.ValidationError({self.page_query_param: [PAGE_NUMBER_HELP]})
        if len(digits) > PAST_ANY_PAGE:
            return 10**PAST_ANY_PAGE  # past the last page: DRF's 404 (int() refuses the longest)
        return int(digits)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["description"] = PAGE_NUMBER_HELP
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters
