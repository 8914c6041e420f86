"""Queued after-commit steps in the admin: their state, attempts, wait and last error."""

from __future__ import annotations

import pytest
from django.test import Client

from orchestration.models import QueuedStep
from orchestration.testing import run_queued_steps
from tests.orchestration.outbox_pipelines import define_note_orchestrator

pytestmark = pytest.mark.django_db


@pytest.fixture
def note_orchestrator():
    return define_note_orchestrator()


def test_the_changelist_shows_what_ran_and_what_failed(
    admin_client: Client, note_orchestrator
) -> None:
    note_orchestrator().execute(["a", "mail too"], request_id="admin-req")
    run_queued_steps()

    listing = admin_client.get("/admin/orchestration/queuedstep/")
    requeued = admin_client.get("/admin/orchestration/queuedstep/", {"state__exact": "queued"})
    by_request = admin_client.get("/admin/orchestration/queuedstep/", {"q": "admin-req"})

    assert listing.status_code == 200
    assert {(e.step, e.state) for e in listing.context["cl"].result_list} == {
        ("note", "done"),
        ("mail", "queued"),
    }
    [waiting] = requeued.context["cl"].result_list
    assert waiting.last_error == "email_unavailable: mail down"
    assert by_request.context["cl"].result_count == 2
    assert "time in queue (s)" in listing.content.decode().lower()


def test_a_queued_step_is_read_only(admin_client: Client, note_orchestrator) -> None:
    note_orchestrator().execute(["a"])
    entry = QueuedStep.objects.get()

    page = admin_client.get(f"/admin/orchestration/queuedstep/{entry.pk}/change/")
    add = admin_client.get("/admin/orchestration/queuedstep/add/")

    assert page.status_code == 200
    assert "state" not in page.context["adminform"].form.fields
    assert add.status_code == 403
