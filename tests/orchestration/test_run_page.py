"""A run's page in the admin shows what the task worker made of its after-commit steps
since the run: each queued step's state, attempts and last error, on the diagram too."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from orchestration.diagrams import CLASS_DEFS, css
from orchestration.models import QueuedStep, RunRecord
from orchestration.testing import run_queued_steps
from tests.orchestration.outbox_pipelines import SEEN, define_note_orchestrator

# The record is written outside the run's transaction: let the runs really commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _record_every_run(settings: Any) -> None:
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "RUN_RECORD_SAMPLE_RATE": 1.0}
    SEEN.clear()


@pytest.fixture
def note_orchestrator():
    return define_note_orchestrator()


def run_page(client: Client, record: RunRecord) -> Any:
    response = client.get(f"/admin/orchestration/runrecord/{record.pk}/change/")
    assert response.status_code == 200
    return response


def queued_rows(response: Any) -> dict[str, tuple[str, int, str]]:
    return {
        row["step"]: (row["entry"].state, row["entry"].attempts, row["entry"].last_error)
        for row in response.context["queued"]
    }


def test_an_after_commit_step_that_failed_in_the_worker_shows_failed_with_its_error(
    admin_client: Client, settings: Any, note_orchestrator
) -> None:
    settings.ORCHESTRATION = {**settings.ORCHESTRATION, "QUEUE_MAX_ATTEMPTS": 1}
    note_orchestrator().execute(["a", "mail too"], request_id="run-page-1")
    record = RunRecord.objects.get(request_id="run-page-1")
    assert [(s["name"], s["status"]) for s in record.steps] == [
        ("create", "ok"),
        ("note", "queued"),
        ("mail", "queued"),
    ]

    before = run_page(admin_client, record)
    assert run_queued_steps() == {"note": "ok", "mail": "failed"}
    after = run_page(admin_client, record)

    assert queued_rows(before) == {"note": ("queued", 0, ""), "mail": ("queued", 0, "")}
    assert "    class step_note,step_mail queued" in before.context["diagram"].splitlines()

    assert queued_rows(after) == {
        "note": ("done", 1, ""),
        "mail": ("failed", 1, "email_unavailable: mail down"),
    }
    html = after.content.decode()
    mail_row = html.split('<tr class="queued-failed" data-queued-step="mail">')[1].split("</tr>")[0]
    assert '<td class="state">failed</td>' in mail_row
    assert '<td class="last-error">email_unavailable: mail down</td>' in mail_row
    entry = QueuedStep.objects.get(step="mail")
    assert f'href="/admin/orchestration/queuedstep/{entry.pk}/change/"' in mail_row
    # The diagram styles each step by its worker's outcome, not by "queued".
    lines = after.context["diagram"].splitlines()
    assert "    class step_create,step_note ok" in lines
    assert "    class step_mail failed" in lines
    assert not [line for line in lines if line.startswith("    class ") and "queued" in line]
    assert any(line.startswith("    step_mail(") and "email_unavailable" in line for line in lines)


def test_a_step_queued_again_after_an_outage_stays_queued_with_its_attempts_and_error(
    admin_client: Client, note_orchestrator
) -> None:
    note_orchestrator().execute(["a", "mail too"], request_id="run-page-2")
    record = RunRecord.objects.get(request_id="run-page-2")

    assert run_queued_steps() == {"note": "ok", "mail": "requeued"}
    page = run_page(admin_client, record)

    assert queued_rows(page)["mail"] == ("queued", 1, "email_unavailable: mail down")
    lines = page.context["diagram"].splitlines()
    assert "    class step_mail queued" in lines
    assert f"    classDef queued {CLASS_DEFS['queued']}" in lines
    assert any(line.startswith("    step_mail(") and "email_unavailable" in line for line in lines)
    assert ("queued", css(CLASS_DEFS["queued"])) in page.context["legend"]


def test_each_run_of_one_request_shows_its_own_queued_steps(
    admin_client: Client, note_orchestrator
) -> None:
    note_orchestrator().execute(["first"], request_id="shared-request")
    run_queued_steps()
    note_orchestrator().execute(["second"], request_id="shared-request")
    first, second = RunRecord.objects.filter(request_id="shared-request").order_by("created")

    assert queued_rows(run_page(admin_client, first)) == {"note": ("done", 1, "")}
    assert queued_rows(run_page(admin_client, second)) == {"note": ("queued", 0, "")}


def test_a_purged_queued_step_is_said_to_be_gone(admin_client: Client, note_orchestrator) -> None:
    note_orchestrator().execute(["a"], request_id="run-page-3")
    record = RunRecord.objects.get(request_id="run-page-3")
    QueuedStep.objects.all().delete()

    page = run_page(admin_client, record)

    assert [row["entry"] for row in page.context["queued"]] == [None]
    assert "no longer in the queue" in page.content.decode()
    assert "    class step_note queued" in page.context["diagram"].splitlines()
