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


def test_every_kind_of_value_is_written_as_bulk_create_writes_it():
    """Timestamps to the microsecond, floats to the last bit, JSON documents, NULLs and
    foreign keys, several rows at once (on PostgreSQL: one JSON parameter)."""
    from orchestration.models import RunRecord

    def record(name: str, duration: float, steps: object) -> RunRecord:
        return RunRecord(
            created=timezone.now().replace(microsecond=123457),
            orchestrator=name,
            request_id=f"req-{name}",
            user=None,
            outcome=RunRecord.Outcome.FAILURE,
            failing_step="charge",
            error_code="payment_declined",
            error_message="Déclinée \"quoted\" 'single' \\ back\nslash",
            duration_ms=duration,
            steps=steps,
            sample_rate=0.1 + 0.2,
        )

    steps = [{"name": "a", "ms": 1e-7, "ok": True, "none": None, "text": "\u2028é"}]
    through_orm = [record("orm_1", 0.1 + 0.2, steps), record("orm_2", 1e300, [])]
    through_insert = [record("insert_1", 0.1 + 0.2, steps), record("insert_2", 1e300, [])]

    RunRecord.objects.bulk_create(through_orm)
    send([insert(through_insert, using="default")], using="default")

    def rows(prefix: str) -> list[dict[str, object]]:
        values = RunRecord.objects.filter(orchestrator__startswith=prefix).order_by("orchestrator")
        return [
            {k: v for k, v in row.items() if k not in ("id", "orchestrator", "request_id")}
            for row in values.values()
        ]

    assert rows("insert_") == rows("orm_")
    assert RunRecord.objects.get(orchestrator="insert_1").duration_ms == 0.1 + 0.2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the JSON rows are PostgreSQL's")
def test_on_postgresql_the_statement_is_the_same_whatever_the_rows():
    one = insert([queued("one", {})], using="default")
    three = insert([queued(name, {"n": name}) for name in ("a", "b", "c")], using="default")

    assert one.sql == three.sql
    assert "jsonb_populate_recordset" in one.sql
    assert len(one.params) == len(three.params) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the JSON rows are PostgreSQL's")
def test_a_value_json_cannot_carry_falls_back_to_values():
    from orchestration.models import RunRecord

    def record(duration: float) -> RunRecord:
        return RunRecord(
            orchestrator="nan", request_id="r", outcome="success", duration_ms=duration
        )

    statement = insert([record(float("nan")), record(1.0)], using="default")
    assert "VALUES" in statement.sql
    send([statement], using="default")

    written = list(
        RunRecord.objects.filter(orchestrator="nan").values_list("duration_ms", flat=True)
    )
    assert 1.0 in written
    assert any(value != value for value in written)  # NaN is not equal to itself


def test_a_json_column_with_its_own_encoder_is_written_as_that_encoder_writes_it():
    import json
    from functools import partial

    from django.core.serializers.json import DjangoJSONEncoder
    from psycopg.types.json import Jsonb

    from orchestration.batch import _as_json

    value = {"amount": Decimal("1.50"), "at": AT}
    encoded = _as_json(
        ["plain", "custom"],
        [[Jsonb({"n": 1}), Jsonb(value, dumps=partial(json.dumps, cls=DjangoJSONEncoder))]],
    )

    assert encoded is not None
    [row] = json.loads(encoded)
    assert row["plain"] == {"n": 1}
    assert row["custom"] == json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    assert _as_json(["raw"], [[b"bytes"]]) is None  # no exact JSON form: VALUES instead
