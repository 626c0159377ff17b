"""Withdrawal after delivery: notices on exactly the versions that held the study, the
owner emailed after commit, the ledger told, the next version without the study."""

from django.core import mail

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.exports import export_request
from datasets.models import (
    NoticeCause,
    VersionStatus,
    VersionStudy,
    WithdrawalNotice,
)
from registry.models import ImagingStudy
from tests.clients import sign_in
from tests.datasets.helpers import STEWARD, fates, make_dataset, make_log_only, run_export


def withdraw(patient, callbacks, **scope):
    with callbacks(execute=True):
        return consent_record(patient=patient, purpose=Purpose.objects.get(code="ai-training"),
                              decision="deny", actor=STEWARD, source="portal",
                              form=current_form(), **scope)


def test_a_withdrawal_notices_exactly_the_versions_that_held_the_study(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    callbacks = django_capture_on_commit_callbacks
    knee = make_dataset(steward, name="Knee AI", selection={"modality": "MR"})
    knee_v1 = run_export(knee, callbacks)
    knee_v2 = run_export(knee, callbacks)
    chest_v1 = run_export(make_dataset(steward, selection={"modality": "CR"}), callbacks)
    knee_study = ImagingStudy.objects.get(description="MR KNEE LEFT")
    mail.outbox.clear()

    record = withdraw(hospital["ann"], callbacks, scope_kind="study",
                      scope_value=knee_study.study_uid)

    notices = WithdrawalNotice.objects.all()
    assert {n.version_id for n in notices} == {knee_v1.pk, knee_v2.pk}
    assert not chest_v1.notices.exists()  # her chest X-ray is still hers to share
    held = VersionStudy.objects.get(version=knee_v1, study=knee_study)
    notice = knee_v1.notices.get()
    assert [s.version_study.pseudo_study_uid for s in notice.studies.all()] == [
        held.pseudo_study_uid]
    assert notice.consent_record == record and notice.emailed_at is not None

    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == [steward.email]
    assert held.pseudo_study_uid in message.body
    assert knee_study.study_uid not in message.body and "Anvers" not in message.body

    events = AuditEvent.objects.filter(action="dataset.withdrawal_notice")
    assert events.count() == 2
    assert all(e.consent_record_ids == [record.pk] for e in events)
    assert all(e.details["pseudonymous_study_uids"] == [held.pseudo_study_uid]
               for e in events)

    knee_v3 = run_export(knee, callbacks)
    assert fates(knee_v3)["MR KNEE LEFT"][0] is False
    assert not knee_v3.notices.exists()


def test_saying_no_again_does_not_notice_twice(steward, hospital, data_dir,
                                              django_capture_on_commit_callbacks):
    callbacks = django_capture_on_commit_callbacks
    run_export(make_dataset(steward, selection={"modality": "CR"}), callbacks)
    withdraw(hospital["ann"], callbacks)
    withdraw(hospital["ann"], callbacks)
    withdraw(hospital["ann"], callbacks, scope_kind="modality", scope_value="CR")
    assert WithdrawalNotice.objects.count() == 1
    assert AuditEvent.objects.filter(action="dataset.withdrawal_notice").count() == 1


def test_a_deny_that_changes_nothing_delivered_makes_no_notice(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    callbacks = django_capture_on_commit_callbacks
    run_export(make_dataset(steward, selection={"modality": "CR"}), callbacks)
    withdraw(hospital["ann"], callbacks, scope_kind="modality", scope_value="MR")
    withdraw(hospital["ben"], callbacks)  # Ben never consented: nothing of his went out
    assert not WithdrawalNotice.objects.exists()


def test_studies_sent_under_a_legal_basis_get_no_notice(steward, hospital, data_dir,
                                                       django_capture_on_commit_callbacks):
    callbacks = django_capture_on_commit_callbacks
    version = run_export(make_log_only(steward, selection={"modality": "CR"}), callbacks)
    withdraw(hospital["ben"], callbacks)
    assert not version.notices.exists()
    withdraw(hospital["ann"], callbacks)  # Ann's went out on her consent: that one is noticed
    assert version.notices.get().studies.get().version_study.study.patient == hospital["ann"]


def test_a_withdrawal_through_the_api_makes_a_notice(
        steward, staff, hospital, data_dir, client, django_capture_on_commit_callbacks):
    callbacks = django_capture_on_commit_callbacks
    version = run_export(make_dataset(steward, selection={"modality": "CR"}), callbacks)
    sign_in(client, staff)
    with callbacks(execute=True):
        response = client.post("/api/v1/consents/withdraw", {
            "patient": hospital["ann"].pk, "purpose": "ai-training", "source": "paper"},
            content_type="application/json")
    assert response.status_code == 201, response.content
    assert version.notices.count() == 1


def test_a_withdrawal_while_the_version_runs_is_noticed_when_it_completes(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    """Ann's chest X-ray is written, then the job stops (a path in its way); she says no to
    that scan while the version is still running; the resumed version completes with her
    study in it (it was written before she said no), so it must carry a notice."""
    from datasets.deid import DeidContext
    from datasets.exports import export_run, version_dir

    callbacks = django_capture_on_commit_callbacks
    chest = ImagingStudy.objects.get(description="CR CHEST PA", patient=hospital["ann"])
    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")
    dataset = make_dataset(steward, selection={"study_uids": [chest.study_uid,
                                                              knee.study_uid]})
    context = DeidContext(secret=bytes.fromhex(dataset.secret), options=frozenset())
    with callbacks(execute=True):
        version = export_request(dataset=dataset, actor=STEWARD)
        staging = version_dir(version, staging=True)
        staging.mkdir(parents=True)
        # A file where the knee's folder must go: the job stops after writing the chest.
        (staging / context.remap_uid(knee.study_uid)).write_text("in the way")
    version.refresh_from_db()
    assert version.status == VersionStatus.RUNNING
    assert [(f.study, f.included) for f in version.studies.all()] == [(chest, True)]

    withdraw(hospital["ann"], callbacks, scope_kind="study", scope_value=chest.study_uid)
    assert not WithdrawalNotice.objects.exists()  # nothing delivered yet

    (staging / context.remap_uid(knee.study_uid)).unlink()
    version = export_run(version_id=version.pk)  # the outbox's next delivery resumes it

    assert version.status == VersionStatus.COMPLETE
    assert fates(version)["CR CHEST PA"][0] is True  # it went out: written before the no
    notice = version.notices.get()
    assert notice.cause == NoticeCause.WITHDRAWN
    assert [s.version_study.study for s in notice.studies.all()] == [chest]
    event = AuditEvent.objects.get(action="dataset.withdrawal_notice")
    assert event.consent_record_ids == [notice.consent_record_id]
    assert event.details["cause"] == NoticeCause.WITHDRAWN

    export_run(version_id=version.pk)  # a redelivery of a complete version adds nothing
    assert WithdrawalNotice.objects.count() == 1


def test_a_permit_that_lapses_after_delivery_is_noticed_by_the_daily_job(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from datasets.withdrawals import lapsed_consent_notices_create

    callbacks = django_capture_on_commit_callbacks
    ann, ben = hospital["ann"], hospital["ben"]
    ai = Purpose.objects.get(code="ai-training")
    now = timezone.now()
    consent_record(patient=ben, purpose=ai, decision="permit", actor=STEWARD,
                   source="paper", form=current_form(), expires_at=now + timedelta(days=30))
    # Ann says no, from next month: it changes nothing today.
    withdraw(ann, callbacks, effective_from=now + timedelta(days=40))
    version = run_export(make_dataset(steward, selection={"modality": "CR"}), callbacks)
    assert version.studies.filter(included=True).count() == 2
    assert not WithdrawalNotice.objects.exists()

    with callbacks(execute=True):
        assert lapsed_consent_notices_create(at=now + timedelta(days=10)) == []
        lapsed = lapsed_consent_notices_create(at=now + timedelta(days=31))
    assert [n.cause for n in lapsed] == [NoticeCause.LAPSED]
    assert [s.version_study.study.patient for s in lapsed[0].studies.all()] == [ben]
    lapsed[0].refresh_from_db()
    assert lapsed[0].consent_record is None and lapsed[0].emailed_at is not None

    with callbacks(execute=True):
        later = lapsed_consent_notices_create(at=now + timedelta(days=41))
    assert [n.cause for n in later] == [NoticeCause.WITHDRAWN]
    assert [s.version_study.study.patient for s in later[0].studies.all()] == [ann]

    with callbacks(execute=True):  # every day after: nothing twice
        assert lapsed_consent_notices_create(at=now + timedelta(days=42)) == []
    events = AuditEvent.objects.filter(action="dataset.withdrawal_notice")
    assert sorted(e.details["cause"] for e in events) == ["lapsed", "withdrawn"]
