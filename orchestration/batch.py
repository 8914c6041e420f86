"""The statements a run sends just before its commit, sent as one.

A run that journaled effects settles them (an ``UPDATE`` of its journal
entries, see ``orchestration.journal``), and a run that queues after-commit
steps inserts their rows and their tasks (``orchestration.outbox``). On
PostgreSQL these go to the server as one statement, a data-modifying ``WITH``,
so a run's durable bookkeeping costs it one round trip whatever it queued;
elsewhere they run one after the other. Rows are written as the ORM's
``bulk_create`` would write them (each field's ``pre_save`` and database
value), without its per-call machinery.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from itertools import chain
from typing import Any
from uuid import UUID

from django.db import connections
from django.db.models import Model

__all__ = ["Statement", "insert", "send"]


@dataclass(slots=True)
class Statement:
    """One SQL statement; ``counted`` asks ``send`` for the rows it affected."""

    sql: str
    params: list[Any] = field(default_factory=list)
    counted: bool = False


def insert(objs: Sequence[Model], *, using: str) -> Statement:
    """A multi-row ``INSERT`` of ``objs`` (one model). An auto-incremented primary key is
    left to the database (and not set on ``objs``); any other is written as set.

    On PostgreSQL the rows go as one JSON parameter that the server unpacks
    (``jsonb_populate_recordset``): the statement's text and its one parameter
    are the same whatever the rows, so the driver prepares it once per process
    instead of splitting and quoting dozens of placeholders on every run.
    Values a JSON document cannot carry exactly fall back to ``VALUES``.
    """
    connection = connections[using]
    meta = type(objs[0])._meta
    fields = [each for each in meta.local_concrete_fields if each is not meta.auto_field]
    quote = connection.ops.quote_name
    rows = [
        [each.get_db_prep_save(each.pre_save(obj, True), connection=connection) for each in fields]
        for obj in objs
    ]
    table = quote(meta.db_table)
    columns = ", ".join(quote(str(each.column)) for each in fields)
    head = f"INSERT INTO {table} ({columns})"
    if connection.vendor == "postgresql":
        document = _as_json([str(each.column) for each in fields], rows)
        if document is not None:
            return Statement(
                f"{head} SELECT {columns} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)",
                [document],
            )
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    return Statement(f"{head} VALUES {', '.join([row] * len(rows))}", list(chain(*rows)))


#: Database values a JSON document carries as the text PostgreSQL reads back exactly.
_AS_TEXT: tuple[type, ...] = (datetime, date, time, UUID, Decimal)


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _as_json(columns: list[str], rows: list[list[Any]]) -> str | None:
    """The rows as a JSON array of objects keyed by column; None if a value does not fit."""
    from psycopg.types.json import Json, Jsonb

    encoded = []
    for row in rows:
        values: dict[str, Any] = {}
        for column, value in zip(columns, row, strict=True):
            if value is None or isinstance(value, str | int) or _finite(value):
                values[column] = value
            elif isinstance(value, _AS_TEXT):
                values[column] = value.isoformat() if hasattr(value, "isoformat") else str(value)
            elif isinstance(value, Json | Jsonb):
                # A JSON column: the document itself, as the field's own encoder writes it.
                dumps = value.dumps
                if dumps is None or dumps is json.dumps:
                    values[column] = value.obj
                else:
                    values[column] = json.loads(dumps(value.obj))
            else:
                return None
        encoded.append(values)
    return json.dumps(encoded)


def send(statements: Sequence[Statement], *, using: str) -> int:
    """Run ``statements`` in order; the rows the ``counted`` one affected (0 if none is)."""
    connection = connections[using]
    if connection.vendor == "postgresql" and len(statements) > 1:
        return _send_as_one(statements, connection)
    counted = 0
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement.sql, statement.params)
            if statement.counted:
                counted = cursor.rowcount
    return counted


def _send_as_one(statements: Sequence[Statement], connection: Any) -> int:
    parts, params, counted = [], [], None
    for number, statement in enumerate(statements):
        name = f"part_{number}"
        sql = statement.sql
        if statement.counted and counted is None:
            counted, sql = name, f"{sql} RETURNING 1"
        parts.append(f"{name} AS ({sql})")
        params.extend(statement.params)
    tail = f"SELECT count(*) FROM {counted}" if counted else "SELECT 0"
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} {tail}", params)
        return int(cursor.fetchone()[0])
