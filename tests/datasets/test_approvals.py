"""Four eyes for log-only: studies go out without consent only on a legal basis that a
privacy officer, not the requester, approved. Each step is a ledger event."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError

from access.roles import Role
from audit.ledger import Actor
from audit.models import AuditEvent
from datasets.approvals import legal_basis_decide
from datasets.models import DatasetVersion, Enforcement, LegalBasisApproval, VersionStatus
from tests.clients import api_with_token, signed_in
from tests.conftest import make_user
from tests.datasets.helpers import make_dataset, run_export


@pytest.fixture
def officer(db):
    return make_user("olga-privacy", Role.PRIVACY_OFFICER)


def log_only(steward):
    return make_dataset(steward, enforcement=Enforcement.LOG_ONLY, irb_waiver="W-404",
                        approving_body="Made-up Board", approver="Nobody",
                        selection={"modality": "CR"})


def decide(dataset, user, decision, note=""):
    return legal_basis_decide(dataset=dataset, user=user, decision=decision, note=note,
                              actor=Actor(label=user.username, role="privacy-officer"))


def test_a_log_only_dataset_cannot_run_before_a_privacy_officer_approves(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    dataset = log_only(steward)
    assert AuditEvent.objects.filter(action="dataset.approval_requested",
                                     dataset_ref=str(dataset.pk)).count() == 1
    with pytest.raises(ValidationError, match="waits for a privacy officer"):
        run_export(dataset, django_capture_on_commit_callbacks)
    page = signed_in(steward).post(f"/datasets/{dataset.pk}/run/", follow=True)
    assert "waits for a privacy officer" in page.content.decode()
    api = api_with_token(steward, "export").post(f"/api/v1/datasets/{dataset.pk}/exports")
    assert api.status_code == 409 and "privacy officer" in api.json()["error"]["message"]
    assert not DatasetVersion.objects.exists()


def test_the_requester_cannot_approve_their_own_even_as_a_privacy_officer(steward, hospital):
    steward.groups.add(Group.objects.get(name=Role.PRIVACY_OFFICER))
    dataset = log_only(steward)
    with pytest.raises(ValidationError, match="second person"):
        decide(dataset, steward, "approved")
    response = signed_in(steward).post(f"/datasets/{dataset.pk}/decide/",
                                       {"decision": "approved"}, follow=True)
    assert "second person" in response.content.decode()
    assert not LegalBasisApproval.objects.exists()


@pytest.mark.parametrize("persona", ["staff", "auditor", "outsider"])
def test_nobody_but_a_privacy_officer_decides(request, persona, steward, hospital):
    dataset = log_only(steward)
    user = request.getfixturevalue(persona)
    with pytest.raises(ValidationError, match="only a privacy officer"):
        decide(dataset, user, "approved")
    assert signed_in(user).post(f"/datasets/{dataset.pk}/decide/",
                                {"decision": "approved"}).status_code in (302, 403)
    assert signed_in(user).get("/datasets/approvals/").status_code == 403
    assert not LegalBasisApproval.objects.exists()


def test_a_second_person_approves_on_the_page_and_the_export_runs(
        steward, officer, hospital, data_dir, django_capture_on_commit_callbacks):
    dataset = log_only(steward)
    client = signed_in(officer)
    waiting = client.get("/datasets/approvals/").content.decode()
    assert dataset.name in waiting and "IRB waiver W-404" in waiting
    client.post(f"/datasets/{dataset.pk}/decide/", {"decision": "approved"})
    approval = LegalBasisApproval.objects.get()
    assert (approval.decided_by, approval.decision) == (officer, "approved")
    event = AuditEvent.objects.get(action="dataset.approved")
    assert event.actor_label == officer.username and "W-404" in event.legal_basis
    detail = signed_in(steward).get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Legal basis approved by olga-privacy" in detail
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert api_with_token(steward, "export").get(
        f"/api/v1/datasets/{dataset.pk}").json()["approval"] == "approved"


def test_a_refusal_needs_a_reason_is_final_and_blocks_the_export(
        steward, officer, hospital, data_dir, django_capture_on_commit_callbacks):
    dataset = log_only(steward)
    with pytest.raises(ValidationError, match="say why"):
        decide(dataset, officer, "refused")
    decide(dataset, officer, "refused", note="No such waiver on file")
    assert AuditEvent.objects.get(action="dataset.refused").reason == "No such waiver on file"
    with pytest.raises(ValidationError, match="decided already"):
        decide(dataset, make_user("oscar", Role.PRIVACY_OFFICER), "approved")
    with pytest.raises(ValidationError, match="refused"):
        run_export(dataset, django_capture_on_commit_callbacks)


@pytest.mark.parametrize("decision", ["", "maybe", "APPROVED"])
def test_a_broken_decision_changes_nothing(steward, officer, hospital, decision):
    dataset = log_only(steward)
    response = signed_in(officer).post(f"/datasets/{dataset.pk}/decide/",
                                       {"decision": decision}, follow=True)
    assert "nothing was decided" in response.content.decode()
    assert not LegalBasisApproval.objects.exists()


def test_datasets_on_consent_need_no_approval(steward, officer, hospital, data_dir,
                                              django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, selection={"modality": "CR"})
    with pytest.raises(ValidationError, match="only log-only"):
        decide(dataset, officer, "approved")
    assert run_export(dataset, django_capture_on_commit_callbacks).status == \
        VersionStatus.COMPLETE


def test_a_refusal_turned_into_an_approval_behind_the_back_is_named(steward, officer,
                                                                    hospital):
    from django.db import connection

    from audit.vouching import verify_rows

    dataset = log_only(steward)
    approval = decide(dataset, officer, "refused", note="No such waiver on file")
    assert verify_rows() == []
    with connection.cursor() as cursor:
        cursor.execute("UPDATE datasets_legalbasisapproval SET decision = 'approved' "
                       "WHERE id = %s", [approval.pk])
    problems = " ".join(str(p) for p in verify_rows())
    assert f"legal basis approval {approval.pk} differs from ledger event" in problems
