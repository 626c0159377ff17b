"""Registering DICOM files: the whole of pydicom's corpus, idempotency, conflicts."""

import shutil
from pathlib import Path

import pydicom
import pytest

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent
from registry.ingest_jobs import ingest_job_queue, ingest_message_run
from registry.models import ImagingStudy, IngestStatus, Instance, Patient, Series
from registry.registration import Status, dicom_ingest_paths

ACTOR = Actor(label="tester", role="staff")

# What registering pydicom 3.0's test files gives, file by file (observed, then checked by
# hand): 108 files register; 24 more reuse a SOPInstanceUID already registered with other
# content (the same image re-encoded); 44 cannot be registered, for these reasons.
EXPECTED_REJECTIONS = {
    "ExplVR_BigEnd.dcm": "no PatientID",
    "ExplVR_BigEndNoMeta.dcm": "not a DICOM file",
    "ExplVR_LitEndNoMeta.dcm": "not a DICOM file",
    "GDCMJ2K_TextGBR.dcm": "no PatientID",
    "JPEGLSNearLossless_08.dcm": "no StudyInstanceUID",
    "JPEGLSNearLossless_16.dcm": "no StudyInstanceUID",
    "MR_truncated.dcm": "truncated",
    "README.txt": "not a DICOM file",
    "SC_jpeg_no_color_transform.dcm": "no PatientID",
    "SC_jpeg_no_color_transform_2.dcm": "no PatientID",
    "SC_rgb_jls_lossy_line.dcm": "no StudyInstanceUID",
    "SC_rgb_jls_lossy_sample.dcm": "no StudyInstanceUID",
    "SC_rgb_jpeg.dcm": "no PatientID",
    "SC_rgb_jpeg_app14_dcmd.dcm": "no PatientID",
    "SC_rgb_jpeg_dcmd.dcm": "no PatientID",
    "UN_sequence.dcm": "no SOPInstanceUID",
    "crayons.icc": "not a DICOM file",
    "empty_charset_LEI.dcm": "no SOPInstanceUID",
    "image_dfl.dcm": "no PatientID",
    "meta_missing_tsyntax.dcm": "no SOPInstanceUID",
    "nested_priv_SQ.dcm": "no SOPInstanceUID",
    "no_meta.dcm": "not a DICOM file",
    "no_meta_group_length.dcm": "no SOPInstanceUID",
    "priv_SQ.dcm": "no SOPInstanceUID",
    "reportsi.dcm": "no PatientID",
    "reportsi_with_empty_number_tags.dcm": "no PatientID",
    "rtplan.dump": "not a DICOM file",
    "rtplan_truncated.dcm": "truncated",
    "rtstruct.dcm": "not a DICOM file",
    "rtstruct.dump": "not a DICOM file",
    "test-SR.dcm": "no PatientID",
    "test1.json": "not a DICOM file",
    "test_PN.json": "not a DICOM file",
    "zipMR.gz": "not a DICOM file",
    "dicomdirtests/DICOMDIR": "DICOMDIR",
    "dicomdirtests/DICOMDIR-bigEnd": "DICOMDIR",
    "dicomdirtests/DICOMDIR-empty.dcm": "DICOMDIR",
    "dicomdirtests/DICOMDIR-implicit": "DICOMDIR",
    "dicomdirtests/DICOMDIR-nooffset": "DICOMDIR",
    "dicomdirtests/DICOMDIR-nopatient": "DICOMDIR",
    "dicomdirtests/DICOMDIR-reordered": "DICOMDIR",
    "dicomdirtests/README.txt": "not a DICOM file",
    "dicomdirtests/TINY_ALPHA/DICOMDIR": "DICOMDIR",
    "dicomdirtests/TINY_ALPHA/README": "not a DICOM file",
}


def relative(outcome_path: str, root: Path) -> str:
    return Path(outcome_path).relative_to(root).as_posix()


def test_every_file_of_pydicoms_corpus_is_registered_or_rejected_with_its_reason(db, corpus):
    summary = dicom_ingest_paths(paths=[corpus], actor=ACTOR, source="test")
    assert summary.total == len(list(p for p in corpus.rglob("*") if p.is_file()))
    assert summary.counts == {Status.REGISTERED: 108, Status.CONFLICT: 24,
                              Status.REJECTED: 44}
    rejected = {relative(o.path, corpus): o.reason for o in summary.problems
                if o.status == Status.REJECTED}
    assert set(rejected) == set(EXPECTED_REJECTIONS)
    for name, reason in rejected.items():
        assert EXPECTED_REJECTIONS[name] in reason, (name, reason)
    conflicts = {relative(o.path, corpus) for o in summary.problems
                 if o.status == Status.CONFLICT}
    assert {"MR_small_bigendian.dcm", "MR_small_RLE.dcm", "rtdose_rle.dcm"} <= conflicts
    assert Instance.objects.count() == 108
    assert ledger.seal() > 0 and ledger.verify().ok


def test_reingesting_the_same_folder_registers_nothing_new(db, corpus):
    dicom_ingest_paths(paths=[corpus], actor=ACTOR, source="test")
    counts = (Patient.objects.count(), ImagingStudy.objects.count(), Series.objects.count(),
              Instance.objects.count(), AuditEvent.objects.count())
    again = dicom_ingest_paths(paths=[corpus], actor=ACTOR, source="test")
    assert again.counts == {Status.KNOWN: 108, Status.CONFLICT: 24, Status.REJECTED: 44}
    assert counts == (Patient.objects.count(), ImagingStudy.objects.count(),
                      Series.objects.count(), Instance.objects.count(),
                      AuditEvent.objects.count())


def test_a_changed_file_with_a_known_uid_is_reported_and_not_overwritten(db, corpus, tmp_path):
    original = tmp_path / "ct.dcm"
    shutil.copy(corpus / "CT_small.dcm", original)
    dicom_ingest_paths(paths=[original], actor=ACTOR, source="test")
    registered = Instance.objects.get()

    changed = tmp_path / "ct-changed.dcm"
    ds = pydicom.dcmread(original)
    ds.StudyDescription = "EDITED"
    ds.save_as(changed)
    summary = dicom_ingest_paths(paths=[changed], actor=ACTOR, source="test")

    assert summary.counts == {Status.CONFLICT: 1}
    assert "already registered with different content" in summary.problems[0].reason
    kept = Instance.objects.get()
    assert (kept.path, kept.sha256) == (registered.path, registered.sha256)
    assert kept.path == str(original)


def test_registration_builds_patient_study_series_and_counts(db, corpus):
    folder = corpus / "dicomdirtests" / "77654033"
    summary = dicom_ingest_paths(paths=[folder], actor=ACTOR, source="test")
    assert summary.counts[Status.REGISTERED] == summary.total
    patient = Patient.objects.get()
    assert patient.mrn == "77654033"
    studies = list(patient.studies.order_by("study_uid"))
    assert sum(s.instance_count for s in studies) == summary.total
    for study in studies:
        assert study.series_count == study.series.count()
        assert study.modalities == "\\".join(sorted({s.modality for s in study.series.all()}))
        for series in study.series.all():
            assert series.instance_count == series.instances.count()


def test_each_registered_study_writes_one_ledger_event_in_the_same_transaction(db, corpus):
    dicom_ingest_paths(paths=[corpus / "dicomdirtests" / "98892003"], actor=ACTOR, source="cli")
    studies = set(ImagingStudy.objects.values_list("study_uid", flat=True))
    events = AuditEvent.objects.filter(action="dicom.registered")
    assert {e.study_uid for e in events} == studies
    event = events.first()
    assert event.event_code == "110107"
    assert event.actor_label == "tester"
    assert event.details["source"] == "cli"
    assert event.patient_ref == str(Patient.objects.get().pk)


def test_a_study_registered_for_another_patient_is_rejected(db, corpus, tmp_path):
    first = tmp_path / "first.dcm"
    shutil.copy(corpus / "CT_small.dcm", first)
    ds = pydicom.dcmread(first)
    ds.PatientID = "SOMEONE-ELSE"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    other = tmp_path / "other.dcm"
    ds.save_as(other)

    summary = dicom_ingest_paths(paths=[first, other], actor=ACTOR, source="test")

    assert summary.counts == {Status.REGISTERED: 1, Status.REJECTED: 1}
    assert "registered for another patient" in summary.problems[0].reason
    assert Patient.objects.count() == 1


def test_one_new_study_claimed_by_two_new_patients_in_one_batch(db, corpus, tmp_path):
    ds = pydicom.dcmread(corpus / "CT_small.dcm")
    for n, patient_id in enumerate(["NEW-A", "NEW-B"]):
        ds.PatientID = patient_id
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.4.{n}"
        ds.save_as(tmp_path / f"{n}.dcm")
    summary = dicom_ingest_paths(paths=[tmp_path], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 1, Status.REJECTED: 1}
    assert list(Patient.objects.values_list("mrn", flat=True)) == ["NEW-A"]


def test_a_broken_file_does_not_stop_the_batch(db, corpus, tmp_path):
    (tmp_path / "0-broken.dcm").write_bytes(b"DICM" + b"\x00" * 200)
    (tmp_path / "1-text.dcm").write_text("not an image")
    shutil.copy(corpus / "CT_small.dcm", tmp_path / "2-good.dcm")
    summary = dicom_ingest_paths(paths=[tmp_path], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 1, Status.REJECTED: 2}


def test_the_same_file_twice_in_one_batch_is_registered_once(db, corpus, tmp_path):
    shutil.copy(corpus / "CT_small.dcm", tmp_path / "a.dcm")
    shutil.copy(corpus / "CT_small.dcm", tmp_path / "b.dcm")
    summary = dicom_ingest_paths(paths=[tmp_path], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 1, Status.KNOWN: 1}


@pytest.mark.parametrize("batch_size", [1, 7])
def test_batches_of_any_size_give_the_same_answer(db, corpus, monkeypatch, batch_size):
    monkeypatch.setattr("registry.registration.BATCH_SIZE", batch_size)
    summary = dicom_ingest_paths(paths=[corpus / "dicomdirtests"], actor=ACTOR, source="test")
    assert summary.counts == {Status.REGISTERED: 81, Status.REJECTED: 10}
    assert Instance.objects.count() == 81


def assert_counts_match_the_rows() -> None:
    for study in ImagingStudy.objects.all():
        series = list(study.series.all())
        assert study.series_count == len(series)
        assert study.instance_count == Instance.objects.filter(series__study=study).count()
        assert study.modalities == "\\".join(sorted({s.modality for s in series if s.modality}))
        assert study.body_parts == "\\".join(
            sorted({s.body_part for s in series if s.body_part}))
        for one in series:
            assert one.instance_count == one.instances.count()


@pytest.mark.parametrize("batch_size", [1, 3, 200])
def test_counts_are_right_for_studies_new_in_a_batch_and_studies_spread_over_batches(
        db, corpus, monkeypatch, batch_size):
    """New studies and series are counted before they are inserted; those registered by an
    earlier batch are counted again in the database."""
    monkeypatch.setattr("registry.registration.BATCH_SIZE", batch_size)
    dicom_ingest_paths(paths=[corpus / "dicomdirtests"], actor=ACTOR, source="test")
    assert ImagingStudy.objects.filter(series_count__gt=1).exists()
    assert_counts_match_the_rows()


def test_a_series_registered_in_another_study_is_rejected(db, corpus, tmp_path):
    first = tmp_path / "first.dcm"
    shutil.copy(corpus / "CT_small.dcm", first)
    dicom_ingest_paths(paths=[first], actor=ACTOR, source="test")
    # The same patient and series, claimed by another study: the series stays where it is.
    ds = pydicom.dcmread(first)
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    moved = tmp_path / "moved.dcm"
    ds.save_as(moved)
    # And by another study of a patient not registered yet.
    ds.PatientID = "NOBODY-YET"
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    stranger = tmp_path / "stranger.dcm"
    ds.save_as(stranger)

    summary = dicom_ingest_paths(paths=[moved, stranger], actor=ACTOR, source="test")

    assert summary.counts == {Status.REJECTED: 2}
    assert all("registered in another study" in p.reason for p in summary.problems)
    # A rejected file leaves no row: no empty study, no patient.
    assert ImagingStudy.objects.count() == 1 and Instance.objects.count() == 1
    assert Patient.objects.count() == 1
    assert Series.objects.get().instance_count == 1


def test_an_ingest_job_delivered_again_after_it_finished_is_not_run_again(db, corpus, tmp_path):
    shutil.copy(corpus / "CT_small.dcm", tmp_path / "ct.dcm")
    job = ingest_job_queue(paths=[str(tmp_path)], actor=ACTOR)
    ingest_message_run({"job_id": job.pk, "shard": 0})
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE and job.summary["registered"] == 1
    finished = job.finished_at

    # A file added since is not registered by the job's second delivery (the outbox may
    # deliver a message twice): the job's summary says what it did, once.
    shutil.copy(corpus / "MR_small.dcm", tmp_path / "mr.dcm")
    ingest_message_run({"job_id": job.pk, "shard": 0})
    job.refresh_from_db()
    assert (job.status, job.finished_at, job.summary["registered"]) == (
        IngestStatus.DONE, finished, 1)
    assert Instance.objects.count() == 1
