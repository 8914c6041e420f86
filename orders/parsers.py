"""The JSON parser of the orders endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions, parsers


class JSONParser(parsers.JSONParser):
    """DRF's parser, with a body nested too deeply for Python's json module answered as a 400.

    ``json`` raises RecursionError, not ValueError, on such input, and DRF's
    parser only turns ValueError into a parse error: the rest would be a 500.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
