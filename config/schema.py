"""What DRF's string fields enforce, stated in the OpenAPI schema (drf-spectacular).

Every ``CharField`` refuses a NUL character, and unless it allows blanks it trims
whitespace and then refuses an empty string: ``"   "`` is a 400. drf-spectacular
states neither (``minLength: 1`` lets ``"   "`` through), so a client that trusts the
schema gets a 400 for a body the schema allows. A pattern on the request side says it.
Imported by ``config.urls``, so the extension is registered before any schema is built.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import Direction
from rest_framework import serializers

#: No NUL anywhere.
WITHOUT_NUL = "^[^\\u0000]*$"
#: No NUL anywhere, and at least one character that is not whitespace.
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class CharFieldRules(OpenApiSerializerFieldExtension):
    target_class = serializers.CharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Direction) -> Any:
        schema = auto_schema._map_serializer_field(self.target, direction, bypass_extensions=True)
        field = self.target
        if direction != "request" or schema.get("type") != "string" or "pattern" in schema:
            return schema
        blank_refused = field.trim_whitespace and not field.allow_blank
        return {**schema, "pattern": NOT_BLANK if blank_refused else WITHOUT_NUL}
