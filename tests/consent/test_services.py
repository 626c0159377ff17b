"""consent_record and consent_withdraw: one transaction each, with their ledger event."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone

from audit.ledger import Actor
from audit.models import AuditEvent
from consent.engine import decide
from consent.models import ConsentRecord
from consent.selectors import current_form
from consent.services import consent_record, consent_withdraw
from tests.consent.factories import make_patient, make_study, purpose

pytestmark = pytest.mark.django_db
ACTOR = Actor(label="sam-staff", role="staff")


def record(patient, **overrides):
    fields = {"patient": patient, "purpose": purpose("ai-training"), "decision": "permit",
              "actor": ACTOR, "source": "staff", "form": current_form()}
    return consent_record(**{**fields, **overrides})


def test_recording_writes_the_record_and_its_ledger_event_together():
    patient = make_patient()
    made = record(patient)
    event = AuditEvent.objects.get(action="consent.recorded")
    assert event.consent_record_ids == [made.pk]
    assert event.patient_ref == str(patient.pk)
    assert event.purpose_code == "ai-training"
    assert event.event_code == "110110"
    assert event.details["text_sha256"] == current_form().text_sha256
    assert made.text_sha256 == current_form().text_sha256
    assert made.recorded_by_label == "sam-staff"


def test_withdrawal_is_a_newer_deny_and_the_permit_stays_on_file():
    patient = make_patient()
    study = make_study(patient)
    permit = record(patient)
    withdrawal = consent_withdraw(patient=patient, purpose=purpose("ai-training"),
                                  actor=ACTOR, source="portal", form=current_form())
    assert withdrawal.decision == "deny"
    assert ConsentRecord.objects.filter(pk=permit.pk).exists()
    later = timezone.now() + timedelta(seconds=1)
    assert decide(study, "ai-training", later).record_ids == (withdrawal.pk,)
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 1


def test_only_a_deny_that_replaces_a_permit_is_a_withdrawal():
    patient = make_patient()
    record(patient, decision="deny")
    record(patient, scope_kind="modality", scope_value="MR")
    record(patient, scope_kind="modality", scope_value="CT", decision="deny")
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 0
    record(patient, decision="permit")
    record(patient, decision="deny")
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 1


def test_modality_and_body_part_scopes_are_stored_upper_case():
    patient = make_patient()
    assert record(patient, scope_kind="body_part", scope_value=" head ").scope_value == "HEAD"
    assert record(patient, scope_kind="modality", scope_value="mr").scope_value == "MR"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"decision": "maybe"}, "decision"),
    ({"source": "carrier-pigeon"}, "source"),
    ({"scope_kind": "galaxy"}, "scope_kind"),
    ({"scope_kind": "all", "scope_value": "MR"}, "scope_value"),
    ({"scope_kind": "modality", "scope_value": ""}, "scope_value"),
    ({"scope_kind": "modality", "scope_value": "M'R;--"}, "scope_value"),
    ({"scope_kind": "study", "scope_value": "1.2.3.4.5"}, "scope_value"),
    ({"expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
    ({"proxy_name": "Pat Parent"}, "proxy_relationship"),
])
def test_bad_input_names_the_field_and_writes_nothing(overrides, field):
    patient = make_patient()
    with pytest.raises(ValidationError) as raised:
        record(patient, **overrides)
    assert field in raised.value.message_dict
    assert ConsentRecord.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_a_study_scope_must_be_one_of_the_patients_own_studies():
    patient, other = make_patient(), make_patient()
    theirs = make_study(other)
    with pytest.raises(ValidationError):
        record(patient, scope_kind="study", scope_value=theirs.study_uid)
    assert ConsentRecord.objects.count() == 0
    mine = make_study(patient)
    made = record(patient, scope_kind="study", scope_value=f"  {mine.study_uid} ")
    stored = ConsentRecord.objects.get()
    assert made.pk == stored.pk and stored.patient == patient
    assert (stored.scope_kind, stored.scope_value) == ("study", mine.study_uid)


def test_a_proxy_choice_is_labelled_as_such():
    patient = make_patient()
    made = record(patient, proxy_name="Pat Parent", proxy_relationship="parent")
    stored = ConsentRecord.objects.get(pk=made.pk)
    assert (stored.proxy_name, stored.proxy_relationship) == ("Pat Parent", "parent")
    assert stored.by_proxy is True
    assert AuditEvent.objects.get().details["proxy"] == "parent"
    assert record(patient).by_proxy is False  # the patient's own choice is not a proxy's


def test_the_database_refuses_to_edit_or_delete_a_consent_record():
    made = record(make_patient())
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.filter(pk=made.pk).update(decision="deny")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.filter(pk=made.pk).delete()
    made.refresh_from_db()
    assert made.decision == "permit"


def test_a_disclosure_needs_consent_or_a_legal_basis():
    from consent.services import disclosure_record

    patient = make_patient()
    study = make_study(patient)
    with pytest.raises(ValidationError) as refused:
        disclosure_record(study=study, purpose=purpose("external-sharing"),
                          recipient="Clinic", actor=ACTOR)
    assert "purpose" in refused.value.message_dict
    assert not AuditEvent.objects.filter(action="disclosure").exists()
    with pytest.raises(ValidationError):
        disclosure_record(study=study, purpose=purpose("education"), recipient=" ",
                          actor=ACTOR)
    record(patient, purpose=purpose("external-sharing"))
    event = disclosure_record(study=study, purpose=purpose("external-sharing"),
                              recipient="Clinic", actor=ACTOR)
    assert event.details["recipient"] == "Clinic" and event.consent_record_ids
    court = disclosure_record(study=study, purpose=purpose("research"), recipient="Court",
                              actor=ACTOR, legal_basis="court order 12/2026")
    assert court.legal_basis == "court order 12/2026"
