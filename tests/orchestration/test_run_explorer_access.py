"""Who may see the run explorer: every page of it needs the run-record view permission,
and the list names the user who ran each run."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from orchestration.models import RunRecord

pytestmark = pytest.mark.django_db

PAGES = (
    "/admin/orchestration/runrecord/",
    "/admin/orchestration/runrecord/orchestrators/",
)


@pytest.fixture
def record(django_user_model: Any) -> RunRecord:
    erin = django_user_model.objects.create_user("erin", "erin@example.com", "x")
    return RunRecord.objects.create(
        orchestrator="create_order",
        request_id="req-access",
        user=erin,
        outcome=RunRecord.Outcome.FAILURE,
        failing_step="charge_payment",
        error_code="payment_declined",
        duration_ms=12.5,
        steps=[{"name": "charge_payment", "status": "failed", "critical": True, "attempts": 1}],
    )


@pytest.fixture
def staff(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("clerk", "clerk@example.com", "x", is_staff=True)


def pages_for(user: Any, record: RunRecord) -> dict[str, int]:
    client = Client()
    client.force_login(user)
    paths = (*PAGES, f"/admin/orchestration/runrecord/{record.pk}/change/")
    return {path: client.get(path).status_code for path in paths}


def test_staff_without_the_view_permission_is_refused_every_page(
    staff: Any, record: RunRecord
) -> None:
    assert set(pages_for(staff, record).values()) == {403}


def test_staff_with_the_view_permission_sees_every_page(staff: Any, record: RunRecord) -> None:
    staff.user_permissions.add(Permission.objects.get(codename="view_runrecord"))

    statuses = pages_for(type(staff).objects.get(pk=staff.pk), record)

    assert set(statuses.values()) == {200}, statuses


def test_the_list_and_the_run_page_name_the_user(admin_client: Client, record: RunRecord) -> None:
    listing = admin_client.get("/admin/orchestration/runrecord/")
    page = admin_client.get(f"/admin/orchestration/runrecord/{record.pk}/change/")

    assert '<td class="field-user_label">erin</td>' in listing.content.decode()
    assert "<th>User</th><td>erin</td>" in page.content.decode()


def test_a_deleted_users_runs_stay_listed_under_their_id(
    admin_client: Client, record: RunRecord
) -> None:
    user_id = record.user_id
    record.user.delete()

    listing = admin_client.get("/admin/orchestration/runrecord/")
    page = admin_client.get(f"/admin/orchestration/runrecord/{record.pk}/change/")

    assert f'<td class="field-user_label">#{user_id} (deleted)</td>' in listing.content.decode()
    assert f"<th>User</th><td>#{user_id} (deleted)</td>" in page.content.decode()
