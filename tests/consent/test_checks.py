"""consent_check, the domain call behind the consent-check API: the unknown UIDs of a large
batch (once built with a set rebuilt per asked UID: quadratic), and the purpose tree it keeps
per process, which must follow every purpose change made through the services."""

from audit.ledger import Actor
from audit.models import AuditEvent
from consent import engine
from consent.checks import consent_check
from consent.governance import purpose_create, purpose_update
from consent.models import Purpose
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


def test_a_purpose_change_through_the_service_reaches_the_next_check(
        db, django_capture_on_commit_callbacks):
    patient = make_patient()
    study = make_study(patient)
    purpose = Purpose.objects.get(code="education")
    first = consent_check(purpose_code="education", at=at(1), actor=ACTOR,
                          study_uids=[study.study_uid])
    with django_capture_on_commit_callbacks(execute=True):
        purpose_update(purpose=purpose, actor=ACTOR,
                       default_policy="opt-in" if purpose.default_policy == "opt-out"
                       else "opt-out")
    second = consent_check(purpose_code="education", at=at(1), actor=ACTOR,
                           study_uids=[study.study_uid])
    assert first.answers[0].decision.allowed != second.answers[0].decision.allowed


def test_a_new_purpose_and_a_cleared_cache_are_read_afresh(
        db, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    engine.cached_purpose_tree()
    with django_capture_on_commit_callbacks(execute=True):
        child = purpose_create(code="edu-child", name="Child", description="d",
                               default_policy="opt-out", actor=ACTOR,
                               parent=Purpose.objects.get(code="education"))
    assert engine.cached_purpose_tree().get("edu-child").pk == child.pk
    # A new purpose written without the service (a data migration): the asked code is
    # missing from the cached tree, so it is read again.
    Purpose.objects.create(code="raw-one", name="Raw", description="d",
                           default_policy="opt-in")
    assert engine.cached_purpose_tree("raw-one").get("raw-one").name == "Raw"
    held = engine.cached_purpose_tree()
    cache.clear()
    assert engine.cached_purpose_tree() is not held
