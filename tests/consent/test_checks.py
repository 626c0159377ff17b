"""consent_check, the domain call behind the consent-check API: the unknown UIDs of a large
batch (once built with a set rebuilt per asked UID: quadratic). The purpose tree it keeps per
process is tested with the engine (tests/consent/test_engine.py)."""

from audit.ledger import Actor
from audit.models import AuditEvent
from consent.checks import consent_check
from tests.consent.factories import at, make_patient, make_record, make_study

ACTOR = Actor.system("test")


def test_large_batch_lists_each_unknown_uid_once_in_the_order_asked(db):
    patient = make_patient()
    studies = [make_study(patient) for _ in range(30)]
    make_record(patient, "ai-training", "permit")
    asked, expected_unknown = [], []
    for n in range(3000):
        if n % 100 == 0:
            asked.append(studies[n // 100].study_uid)
        else:
            uid = f"2.25.{n}"
            asked.append(uid)
            expected_unknown.append(uid)
    asked += asked[:500]  # asked twice: answered and listed once
    result = consent_check(purpose_code="ai-training", at=at(1), actor=ACTOR,
                           study_uids=asked)
    assert result.unknown == expected_unknown
    assert [a.study_uid for a in result.answers] == sorted(s.study_uid for s in studies)
    assert all(a.decision.allowed and a.patient_id == patient.pk for a in result.answers)
    event = AuditEvent.objects.get(action="consent.checked")
    assert event.details["unknown"] == expected_unknown
    assert event.details["allowed_count"] == 30 and event.details["denied_count"] == 0
