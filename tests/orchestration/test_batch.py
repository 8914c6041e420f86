"""The run's last writes sent as one statement (``orchestration.batch``)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestration.batch import Statement, insert, send
from orchestration.models import QueuedStep

pytestmark = pytest.mark.django_db

AT = timezone.now()


def queued(name: str, payload: object) -> QueuedStep:
    return QueuedStep(
        orchestrator="batch",
        step=name,
        module="tests",
        request_id=f"req-{name}",
        payload=payload,
        enqueued_at=AT,
    )


def test_insert_writes_what_bulk_create_writes():
    payload = {"amount": str(Decimal("1.50")), "items": [1, None, "é"], "nested": {"a": True}}
    through_orm, through_insert = queued("orm", payload), queued("insert", payload)

    QueuedStep.objects.bulk_create([through_orm])
    send([insert([through_insert], using="default")], using="default")

    def row(pk: uuid.UUID) -> dict[str, object]:
        values = QueuedStep.objects.filter(pk=pk).values().get()
        return {
            key: value for key, value in values.items() if key not in ("id", "step", "request_id")
        }

    assert row(through_insert.pk) == row(through_orm.pk)
    assert QueuedStep.objects.get(pk=through_insert.pk).payload == payload


def test_send_runs_every_statement_and_counts_the_counted_one():
    group = Group.objects.create(name="before")
    statements = [
        Statement('UPDATE "auth_group" SET "name" = %s WHERE "id" = %s', ["after", group.pk], True),
        insert([queued("one", {}), queued("two", {})], using="default"),
    ]

    with CaptureQueriesContext(connection) as queries:
        counted = send(statements, using="default")

    assert counted == 1
    assert Group.objects.get().name == "after"
    assert sorted(QueuedStep.objects.values_list("step", flat=True)) == ["one", "two"]
    expected = 1 if connection.vendor == "postgresql" else 2
    assert len(queries.captured_queries) == expected


def test_a_failing_part_writes_nothing_of_the_others():
    Group.objects.create(name="taken")
    statements = [
        insert([queued("lost", {})], using="default"),
        Statement('INSERT INTO "auth_group" ("name") VALUES (%s)', ["taken"]),
    ]

    with pytest.raises(DatabaseError), transaction.atomic():
        send(statements, using="default")

    assert not QueuedStep.objects.filter(step="lost").exists()
