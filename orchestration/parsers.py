"""The one JSON parser of the API: every endpoint, the token endpoints included.

DRF's own parser lets through what later crashes the request: a body nested
deeper than Python's recursion limit (RecursionError), a string with a lone
surrogate (``"\\ud800"``, which no renderer can encode back when the 400 echoes
it), ``NaN``, ``Infinity`` and numbers too large for a float, and any charset
the codec registry knows (``utf-7``). This one refuses all of them with a 400
(415 for another charset); the body size is bounded by Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (413).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from django.utils.http import parse_header_parameters
from rest_framework import exceptions, parsers

#: Nesting of objects and arrays deeper than this is refused.
MAX_DEPTH = 32


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]!r} is out of range")
    return value


def check_structure(data: Any) -> None:
    """ParseError when ``data`` nests deeper than MAX_DEPTH or holds a string that
    is not encodable as UTF-8 (a lone surrogate), in a key or a value."""
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise exceptions.ParseError(
                    f"JSON parse error - nested deeper than {MAX_DEPTH} levels."
                )
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise exceptions.ParseError(
            "JSON parse error - a string holds an unpaired surrogate (not valid Unicode)."
        ) from None


class JSONParser(parsers.JSONParser):
    """Strict JSON in UTF-8: bounded depth, finite numbers, encodable strings."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        _, params = parse_header_parameters(media_type or "")
        charset = params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise exceptions.UnsupportedMediaType(
                media_type or "", detail="Only UTF-8 request bodies are accepted."
            )
        try:
            data = json.loads(
                stream.read().decode("utf-8"),
                parse_constant=_reject_constant,
                parse_float=_finite_float,
            )
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        except ValueError as exc:  # UnicodeDecodeError included
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        check_structure(data)
        return data
