"""POST /api/v1/consent-checks: the contract, bad payloads, scopes, and agreement with
decide() for every study."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from rest_framework.test import APIClient

from access.tokens import api_token_create
from audit.ledger import Actor
from audit.models import AuditEvent
from consent.engine import decide
from tests.clients import api_as as as_user
from tests.consent.factories import at, make_patient, make_record, make_study
from tests.consent.test_engine_property import build, worlds

URL = "/api/v1/consent-checks"


def test_staff_checks_studies_and_unknown_uids_are_listed(staff):
    patient = make_patient()
    head, chest = make_study(patient, ("CT", "HEAD")), make_study(patient, ("CT", "CHEST"))
    permit = make_record(patient, "ai-training", "permit")
    deny = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                       scope_value="HEAD")
    response = as_user(staff).post(URL, {
        "purpose": "ai-training", "at": at(1).isoformat(),
        "study_instance_uids": [head.study_uid, chest.study_uid, "1.2.3.404"]}, format="json")
    assert response.status_code == 200
    body = response.json()
    by_uid = {r["study_instance_uid"]: r for r in body["results"]}
    assert by_uid[head.study_uid]["allowed"] is False
    assert by_uid[head.study_uid]["deciding_record_ids"] == [deny.pk]
    assert by_uid[chest.study_uid]["decision"] == "permit"
    assert by_uid[chest.study_uid]["deciding_record_ids"] == [permit.pk]
    assert "said yes to training AI tools" in by_uid[chest.study_uid]["reason"]
    assert body["unknown"] == ["1.2.3.404"]
    event = AuditEvent.objects.get(action="consent.checked")
    assert event.details["denied"] == [head.study_uid]
    assert event.details["allowed"] == [chest.study_uid]
    assert event.details["unknown"] == ["1.2.3.404"]
    assert event.actor_label == staff.username and event.purpose_code == "ai-training"


def test_a_whole_patient_can_be_checked_by_mrn(steward):
    patient = make_patient("MRN-77")
    studies = [make_study(patient), make_study(patient)]
    response = as_user(steward).post(URL, {"purpose": "education", "patient_mrn": "MRN-77"},
                                     format="json")
    assert response.status_code == 200
    assert {r["study_instance_uid"] for r in response.json()["results"]} == {
        s.study_uid for s in studies}
    assert all(r["by_default_policy"] and r["allowed"] for r in response.json()["results"])
    assert AuditEvent.objects.get(action="consent.checked").patient_ref == str(patient.pk)


@pytest.mark.parametrize(("payload", "field"), [
    ({"study_instance_uids": ["1.2.3"]}, "purpose"),
    ({"purpose": "no-such-purpose", "study_instance_uids": ["1.2.3"]}, "purpose"),
    ({"purpose": "ai training!", "study_instance_uids": ["1.2.3"]}, "purpose"),
    ({"purpose": "ai-training", "study_instance_uids": [f"1.2.{n}" for n in range(10_001)]},
     "study_instance_uids"),
    ({"purpose": "ai-training", "study_instance_uids": ["1.2.3", "1.2.abc"]},
     "study_instance_uids.1"),
    ({"purpose": "ai-training", "study_instance_uids": ["1." + "2" * 70]},
     "study_instance_uids.0"),
    ({"purpose": "ai-training", "study_instance_uids": "1.2.3"}, "study_instance_uids"),
    ({"purpose": "ai-training", "study_instance_uids": [1, 2]}, "study_instance_uids.0"),
    ({"purpose": "ai-training", "study_instance_uids": []}, "study_instance_uids"),
    ({"purpose": "ai-training"}, "study_instance_uids"),
    ({"purpose": "ai-training", "study_instance_uids": ["1.2.3"], "patient_mrn": "X"},
     "study_instance_uids"),
    ({"purpose": "ai-training", "patient_mrn": "NOBODY"}, "patient_mrn"),
    ({"purpose": "ai-training", "study_instance_uids": ["1.2.3"], "at": "yesterday"}, "at"),
    ({"purpose": ["ai-training"], "study_instance_uids": ["1.2.3"]}, "purpose"),
])
def test_bad_payloads_get_400_with_the_field_and_nothing_is_written(staff, payload, field):
    before = AuditEvent.objects.count()  # the persona's own role grant
    response = as_user(staff).post(URL, payload, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert error["field"] == field, error
    assert error["message"]
    assert AuditEvent.objects.count() == before


def test_a_body_that_is_not_json_gets_400(staff):
    response = as_user(staff).post(URL, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_tokens_need_consent_read_and_patients_are_refused(staff, patient):
    _, reader = api_token_create(owner=staff, name="AI platform", scopes=["consent:read"],
                                 actor=Actor(label="admin"))
    _, ingester = api_token_create(owner=staff, name="PACS", scopes=["ingest"],
                                   actor=Actor(label="admin"))
    payload = {"purpose": "education", "study_instance_uids": ["1.2.3"]}
    for secret, expected in [(reader, 200), (ingester, 403)]:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert client.post(URL, payload, format="json").status_code == expected
    assert as_user(patient.user).post(URL, payload, format="json").status_code == 403
    assert APIClient().post(URL, payload, format="json").status_code == 401


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(world=worlds())
def test_the_batch_check_answers_exactly_as_decide(staff, world):
    purposes, studies = build(world)
    client = as_user(staff)
    day, hour, zone = world[-1][0]
    # Any time zone: the API answers for the instant, as decide does.
    when = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day, hours=hour)).astimezone(
        timezone(timedelta(hours=zone)))
    for purpose in purposes:
        response = client.post(URL, {"purpose": purpose.code, "at": when.isoformat(),
                                     "study_instance_uids": [s.study_uid for s in studies]},
                               format="json")
        assert response.status_code == 200
        answers = {r["study_instance_uid"]: r for r in response.json()["results"]}
        for study in studies:
            expected = decide(study, purpose.code, when)
            got = answers[study.study_uid]
            assert (got["allowed"], tuple(got["deciding_record_ids"]), got["reason"]) == (
                expected.allowed, expected.record_ids, expected.reason)
