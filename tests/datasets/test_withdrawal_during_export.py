"""A withdrawal landing while a real worker writes the version: another worker handles the
deny while the version is still running (and finds nothing complete to notice); the
version, once complete, notices the study itself. Real workers, Redis and PostgreSQL."""

import signal
from datetime import date

import pytest
from django.db import connection

from audit.ledger import Actor
from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record, consent_withdraw
from datasets.exports import dataset_create, export_request
from datasets.models import DatasetVersion, NoticeCause, VersionStatus, WithdrawalNotice
from outbox.models import MessageStatus, OutboxMessage
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.models import Patient
from registry.registration import dicom_ingest_paths
from tests.test_worker import (  # noqa: F401 - broker_queue is a fixture
    REDIS_URL,
    broker_queue,
    spawn_worker,
    stop_worker,
    wait_for,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL (always runs in CI)"),
]


def test_a_withdrawal_while_a_worker_writes_the_version_is_noticed_when_it_completes(
        broker_queue, tmp_path, steward):  # noqa: F811 - the fixture, first: real commits
    if connection.vendor != "postgresql":
        pytest.skip("a frozen worker holds SQLite's only write lock; PostgreSQL locks rows")
    queue = broker_queue
    actor = Actor(label="stella", role="steward")
    chest = next(r for r in RECIPES if r.description == "CR CHEST PA")
    files = []
    for n in range(40):
        person = SyntheticPatient(f"MRN-{n:03}", f"Person^{n}", date(1960 + n, 1, 1), "F")
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=chest,
                             study_date=date(2025, 1, 1), accession=f"ACC-{n}")
    dicom_ingest_paths(paths=files, actor=actor, source="test")
    ai = Purpose.objects.get(code="ai-training")
    for patient in Patient.objects.all():
        consent_record(patient=patient, purpose=ai, decision="permit", actor=actor,
                       source="paper", form=current_form())
    dataset = dataset_create(name="Chest AI", purpose=ai, owner=steward, recipient="Lab",
                             actor=actor, selection={"modality": "CR"})

    writer = spawn_worker(queue, tmp_path)
    version = export_request(dataset=dataset, actor=actor)
    wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).studies_done >= 3)
    writer.send_signal(signal.SIGSTOP)  # frozen mid-run: the version is still running
    other = spawn_worker(queue, tmp_path)
    try:
        written = version.studies.filter(included=True).select_related("study").first()
        patient = Patient.objects.get(pk=written.study.patient_id)
        consent_withdraw(patient=patient, purpose=ai, actor=actor, source="paper",
                         form=current_form())
        wait_for(lambda: OutboxMessage.objects.filter(
            kind="consent.changed", status=MessageStatus.DELIVERED).exists())
        assert DatasetVersion.objects.get(pk=version.pk).status == VersionStatus.RUNNING
        assert not WithdrawalNotice.objects.exists()  # nothing complete held it yet

        writer.send_signal(signal.SIGCONT)
        wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).status
                 == VersionStatus.COMPLETE)
        wait_for(lambda: WithdrawalNotice.objects.exists(), seconds=30)
    finally:
        writer.send_signal(signal.SIGCONT)
        stop_worker(other)
        stop_worker(writer)
    notice = WithdrawalNotice.objects.get()
    assert notice.version_id == version.pk and notice.cause == NoticeCause.WITHDRAWN
    assert [s.version_study_id for s in notice.studies.all()] == [written.pk]
    events = AuditEvent.objects.filter(action="dataset.withdrawal_notice")
    assert events.count() == 1 and events.get().patient_ref == str(patient.pk)
