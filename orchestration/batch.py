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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    """A multi-row ``INSERT`` of ``objs`` (one model, primary keys set by their defaults)."""
    connection = connections[using]
    meta = type(objs[0])._meta
    fields = list(meta.local_concrete_fields)
    quote = connection.ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    for obj in objs:
        params.extend(
            each.get_db_prep_save(each.pre_save(obj, True), connection=connection)
            for each in fields
        )
    columns = ", ".join(quote(str(each.column)) for each in fields)
    return Statement(
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {', '.join([row] * len(objs))}",
        params,
    )


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
