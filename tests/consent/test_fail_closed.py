"""When consent cannot be read, the answer is deny (DESIGN.md, "fail closed"): a purpose
tree with a cycle in it, or a consent table the database will not read. The engine says
deny; decide_many refuses to answer; the consent-check API answers 503 and writes nothing."""

import logging

import pytest
from django.db import connection, transaction

from audit.models import AuditEvent
from consent.engine import ConsentUnavailable, decide, decide_in_general, decide_many
from consent.models import ConsentRecord, Purpose
from registry.models import ImagingStudy
from tests.clients import api_as
from tests.consent.factories import at, make_patient, make_record, make_study

URL = "/api/v1/consent-checks"


@pytest.fixture
def looped(db):
    """looped-a > looped-b (both opt-out), then looped-a's parent is set to looped-b: the
    lineage of either never reaches a root. (An update, as a faulty migration or a hand
    edit in the database would make it; the services would never write it.)"""
    a = Purpose.objects.create(code="looped-a", name="Looped A", description="test",
                               default_policy="opt-out")
    b = Purpose.objects.create(code="looped-b", name="Looped B", description="test",
                               parent=a, default_policy="opt-out")
    Purpose.objects.filter(pk=a.pk).update(parent=b)
    patient = make_patient()
    study = make_study(patient, ("CT", "CHEST"))
    permit = make_record(patient, "looped-b", "permit")
    return patient, study, permit


def test_a_cycle_in_the_purpose_tree_denies_even_an_explicit_yes(looped):
    patient, study, _permit = looped
    for code in ("looped-a", "looped-b"):
        answer = decide(study, code, at(1))
        assert answer.allowed is False and answer.record_ids == ()
        assert "could not be read" in answer.reason
        general = decide_in_general(patient.pk, code, at(1))
        assert general.allowed is False and "could not be read" in general.reason


def test_a_decision_that_fails_closed_is_logged_with_its_cause(looped, caplog):
    """The answer says only "could not be read"; the operator's log says why."""
    patient, study, _ = looped
    with caplog.at_level(logging.ERROR, logger="consent.engine"):
        decide(study, "looped-b", at(1))
        decide_in_general(patient.pk, "looped-b", at(1))
    logged = [r for r in caplog.records if r.name == "consent.engine"]
    assert [r.getMessage() for r in logged] == ["consent decision failed closed"] * 2
    assert all("cycle" in str(r.exc_info[1]) for r in logged)


def test_a_cycle_in_the_purpose_tree_makes_decide_many_refuse(looped):
    _, study, _ = looped
    with pytest.raises(ConsentUnavailable, match="cycle"):
        decide_many(ImagingStudy.objects.filter(pk=study.pk), "looped-b", at(1))


def test_a_cycle_elsewhere_in_the_tree_does_not_stop_other_purposes(looped):
    patient, study, _ = looped
    make_record(patient, "ai-training", "permit")
    assert decide(study, "ai-training", at(1)).allowed is True
    many = decide_many(ImagingStudy.objects.filter(pk=study.pk), "ai-training", at(1))
    assert many[study.pk].allowed is True


def test_the_consent_check_api_answers_503_on_a_cycle_and_writes_nothing(looped, staff):
    _, study, _ = looped
    before = AuditEvent.objects.count()
    response = api_as(staff).post(URL, {"purpose": "looped-b",
                                        "study_instance_uids": [study.study_uid]},
                                  format="json")
    assert response.status_code == 503
    assert "not allowed" in response.json()["error"]["message"]
    assert AuditEvent.objects.count() == before


class _Undo(Exception):
    pass


def test_the_consent_check_api_answers_503_when_the_records_table_cannot_be_read(staff):
    patient = make_patient()
    study = make_study(patient, ("CT", "CHEST"))
    make_record(patient, "education", "permit")
    before = AuditEvent.objects.count()
    table = ConsentRecord._meta.db_table
    payload = {"purpose": "education", "study_instance_uids": [study.study_uid]}
    assert api_as(staff).post(URL, payload, format="json").status_code == 200
    # The table really goes away (inside a savepoint, undone afterwards): the database,
    # not a stand-in, refuses the read.
    with pytest.raises(_Undo), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        response = api_as(staff).post(URL, payload, format="json")
        raise _Undo
    assert response.status_code == 503
    assert response.json()["error"]["message"].startswith("Consent could not be read")
    # Only the first (successful) check is in the ledger.
    assert AuditEvent.objects.filter(action="consent.checked").count() == 1
    assert AuditEvent.objects.count() == before + 1


def test_decide_denies_when_the_records_table_cannot_be_read(staff):
    patient = make_patient()
    study = make_study(patient, ("CT", "CHEST"))
    make_record(patient, "education", "permit")
    assert decide(study, "education", at(1)).allowed is True
    table = ConsentRecord._meta.db_table
    with pytest.raises(_Undo), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        answer = decide(study, "education", at(1))
        raise _Undo
    assert answer.allowed is False and "could not be read" in answer.reason


def test_a_patients_general_choice_ignores_narrower_scopes(db):
    """decide_in_general answers for no study in particular: a body-part, modality or study
    choice does not apply to it, only an all-studies one."""
    from consent.engine import decide_in_general

    patient = make_patient()
    study = make_study(patient, ("MR", "HEAD"))
    make_record(patient, "ai-training", "permit")
    make_record(patient, "ai-training", "deny", scope_kind="body_part", scope_value="HEAD")
    make_record(patient, "ai-training", "deny", scope_kind="modality", scope_value="MR")
    make_record(patient, "ai-training", "deny", scope_kind="study", scope_value=study.study_uid)
    general = decide_in_general(patient.pk, "ai-training", at(1))
    assert general.allowed is True and len(general.record_ids) == 1
    assert decide(study, "ai-training", at(1)).allowed is False
