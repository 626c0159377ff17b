"""The consent API's resources: purposes and consent records. Contract, bad input, scopes."""

import pytest

from audit.models import AuditEvent
from consent.models import ConsentRecord
from tests.clients import api_as as as_user
from tests.clients import api_with_token as with_token


def test_purposes_are_readable_by_anyone_signed_in(patient):
    body = as_user(patient.user).get("/api/v1/purposes").json()
    codes = {p["code"]: p for p in body["results"]}
    assert codes["ai-training"]["parent"] == "research"
    assert codes["research"]["duo_id"] == "DUO:0000042"


def test_staff_record_a_paper_consent_and_list_it(staff, hospital):
    alice, _, _ = hospital
    response = as_user(staff).post("/api/v1/consents", {
        "patient": alice.pk, "purpose": "research", "decision": "permit",
        "source": "paper", "witness": "R. Clerk"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["form_version"] == 1
    listed = as_user(staff).get(f"/api/v1/patients/{alice.pk}/consents").json()
    assert [r["id"] for r in listed["results"]] == [response.json()["id"]]
    assert AuditEvent.objects.filter(action="phi.viewed", patient_ref=str(alice.pk)).exists()


def test_withdrawing_through_the_api(staff, hospital):
    alice, _, _ = hospital
    client = as_user(staff)
    client.post("/api/v1/consents", {"patient": alice.pk, "purpose": "research",
                                     "decision": "permit"}, format="json")
    response = client.post("/api/v1/consents/withdraw", {"patient": alice.pk,
                                                        "purpose": "research"}, format="json")
    assert response.status_code == 201
    assert response.json()["decision"] == "deny"
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 1


@pytest.mark.parametrize(("payload", "field"), [
    ({"purpose": "research", "decision": "permit"}, "patient"),
    ({"patient": 999999, "purpose": "research", "decision": "permit"}, "patient"),
    ({"patient": "PATIENT", "purpose": "research", "decision": "permit"}, "patient"),
    ({"patient": "{alice}", "purpose": "nothing", "decision": "permit"}, "purpose"),
    ({"patient": "{alice}", "purpose": "research", "decision": "yes"}, "decision"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "scope_kind": "study", "scope_value": "{bobs_study}"}, "scope_value"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "scope_kind": "all", "scope_value": "MR"}, "scope_value"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "effective_from": "2026-05-01T00:00:00Z", "expires_at": "2026-04-01T00:00:00Z"},
     "expires_at"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "source": "verbal"}, "witness"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "source": "portal"}, "source"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "form_version": 99}, "form_version"),
    ({"patient": "{alice}", "purpose": "research", "decision": "permit",
      "proxy_name": "Dad"}, "proxy_relationship"),
])
def test_bad_consent_payloads_get_400_with_the_field_and_write_nothing(staff, hospital,
                                                                        payload, field):
    alice, _, studies = hospital
    payload = {k: (alice.pk if v == "{alice}" else
                   studies["b-ct"].study_uid if v == "{bobs_study}" else v)
               for k, v in payload.items()}
    response = as_user(staff).post("/api/v1/consents", payload, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["field"] == field
    assert ConsentRecord.objects.count() == 0
    assert not AuditEvent.objects.filter(action__startswith="consent.").exists()


def test_a_token_without_consent_write_cannot_record_consent(staff, hospital):
    alice, _, _ = hospital
    payload = {"patient": alice.pk, "purpose": "research", "decision": "permit"}
    assert with_token(staff, "consent:read").post("/api/v1/consents", payload,
                                                  format="json").status_code == 403
    assert with_token(staff, "consent:write").post("/api/v1/consents", payload,
                                                   format="json").status_code == 201
    event = AuditEvent.objects.get(action="consent.recorded")
    assert event.api_token and event.actor_role == "system"


@pytest.mark.parametrize("path", ["/api/v1/patients", "/api/v1/studies",
                                  "/api/v1/patients/{alice}/consents"])
def test_a_patients_session_cannot_reach_staff_endpoints(patient, hospital, path):
    alice, _, _ = hospital
    response = as_user(patient.user).get(path.replace("{alice}", str(alice.pk)))
    assert response.status_code == 403


def test_a_patients_session_cannot_record_consent(patient, hospital):
    alice, _, _ = hospital
    response = as_user(patient.user).post("/api/v1/consents", {
        "patient": alice.pk, "purpose": "research", "decision": "permit"}, format="json")
    assert response.status_code == 403
    assert ConsentRecord.objects.count() == 0


def test_auditors_read_but_cannot_write(auditor, hospital):
    alice, _, _ = hospital
    client = as_user(auditor)
    assert client.get("/api/v1/studies").status_code == 200
    response = client.post("/api/v1/consents", {"patient": alice.pk, "purpose": "research",
                                                "decision": "permit"}, format="json")
    assert response.status_code == 403


def test_the_schema_validates(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "/api/v1/consent-checks" in text and "apiToken" in text


# Issue 13: the API accepts only known codes or aliases and stores the code.

@pytest.mark.parametrize(("kind", "typed", "stored"), [
    ("modality", "MRI", "MR"), ("modality", "pet", "PT"), ("modality", "X-ray", "XRAY"),
    ("modality", "mammogram", "MG"), ("body_part", "Head", "HEAD"),
    ("body_part", "legs", "LOWERLIMB"),
])
def test_the_api_stores_the_code_for_an_alias(staff, hospital, kind, typed, stored):
    alice, _, _ = hospital
    response = as_user(staff).post("/api/v1/consents", {
        "patient": alice.pk, "purpose": "research", "decision": "deny",
        "scope_kind": kind, "scope_value": typed}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["scope_value"] == stored


@pytest.mark.parametrize(("path", "kind", "typed", "suggested"), [
    ("/api/v1/consents", "body_part", "BRAINZ", "HEAD"),
    ("/api/v1/consents", "modality", "MRII", "MR"),
    ("/api/v1/consents", "modality", "CHEST", ""),
    ("/api/v1/consents/withdraw", "body_part", "chestt", "CHEST"),
    ("/api/v1/consents/withdraw", "body_part", "KNEE", "LOWERLIMB"),
])
def test_the_api_refuses_terms_outside_the_vocabulary_with_the_nearest(
        staff, hospital, path, kind, typed, suggested):
    alice, _, _ = hospital
    response = as_user(staff).post(path, {
        "patient": alice.pk, "purpose": "research", "decision": "deny",
        "scope_kind": kind, "scope_value": typed}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "scope_value"
    assert typed in error["message"] and suggested in error["message"]
    assert ConsentRecord.objects.count() == 0
