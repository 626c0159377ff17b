"""Exports gated on consent: modes, safety exclusions, the re-check before writing,
manifests that detect tampering, and the ledger's record of every study decided."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets import exports
from datasets.deid import DeidContext
from datasets.exports import export_give_up, export_run, version_dir
from datasets.models import Enforcement, VersionStatus, VersionStudy
from registry.identifiers import mrn_digest
from registry.models import ImagingStudy
from tests.datasets.helpers import STEWARD, fates, make_dataset, make_log_only, run_export


def test_exclude_mode_exports_only_consented_safe_studies(steward, hospital, data_dir,
                                                          django_capture_on_commit_callbacks):
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    result = fates(version)
    assert result["MR KNEE LEFT"][0] is True
    assert "3D head" in result["CT HEAD WITHOUT CONTRAST"][1]
    assert "burned-in" in result["US ABDOMEN"][1]
    chest = [f for f in VersionStudy.objects.filter(version=version,
                                                    study__description="CR CHEST PA")]
    assert sorted(f.included for f in chest) == [False, True]  # Ann yes, Ben no
    assert any("no consent" in f.reason for f in chest if not f.included)
    out = version_dir(version)
    assert not version_dir(version, staging=True).exists()
    call_command("verify_export", str(out))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipient"] == "Acme AI Lab" and manifest["purpose"] == "ai-training"
    assert sum(manifest["excluded_by_reason"].values()) == 3
    # The decision time of a run that was never interrupted, not null.
    assert manifest["decided_at"] == version.decided_at.isoformat()
    text = (out / "manifest.json").read_text() + (out / "manifest.csv").read_text()
    for study in ImagingStudy.objects.all():
        assert study.study_uid not in text  # pseudonymous ids only
    events = AuditEvent.objects.filter(action__startswith="export.", dataset_ref=str(
        version.dataset_id)).exclude(action="export.delivered")
    assert events.count() == VersionStudy.objects.filter(version=version).count() == 5
    assert all(e.event_code == "110106" for e in events)


def test_a_rerun_changes_nothing(steward, hospital, data_dir,
                                 django_capture_on_commit_callbacks):
    """A complete version is left alone (the resume path has its own test below)."""
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    out = version_dir(version)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    before = (AuditEvent.objects.count(), VersionStudy.objects.count())
    again = export_run(version_id=version.pk)
    assert again.status == VersionStatus.COMPLETE
    assert again.manifest_sha256 == version.manifest_sha256
    assert (AuditEvent.objects.count(), VersionStudy.objects.count()) == before
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def test_reject_mode_fails_with_the_list_of_studies(steward, hospital, data_dir,
                                                    django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, enforcement=Enforcement.REJECT)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.FAILED
    ben_chest = ImagingStudy.objects.get(patient__mrn_index=mrn_digest("MRN-BEN"))
    assert ben_chest.study_uid in version.error
    assert not version_dir(version).exists()


def test_a_failed_version_delivered_again_stays_failed_and_writes_nothing(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    version = run_export(make_dataset(steward, enforcement=Enforcement.REJECT),
                         django_capture_on_commit_callbacks)
    before = (AuditEvent.objects.count(), VersionStudy.objects.count())
    again = export_run(version_id=version.pk)
    assert again.status == VersionStatus.FAILED and again.error == version.error
    assert (AuditEvent.objects.count(), VersionStudy.objects.count()) == before
    assert not version_dir(version).exists()


def test_reject_mode_exports_when_every_selected_study_has_consent(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    # From 2 May: Ann's studies only, and Ann said yes.
    dataset = make_dataset(steward, enforcement=Enforcement.REJECT,
                           selection={"date_from": "2025-05-02"})
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert set(fates(version)) == {"MR KNEE LEFT", "CT HEAD WITHOUT CONTRAST", "US ABDOMEN"}
    call_command("verify_export", str(version_dir(version)))
    # The outbox giving up on a message whose version completed meanwhile changes nothing.
    export_give_up({"version_id": version.pk}, "late failure")
    version.refresh_from_db()
    assert version.status == VersionStatus.COMPLETE and version_dir(version).is_dir()
    assert not AuditEvent.objects.filter(action="export.failed").exists()


def test_log_only_needs_a_legal_basis(steward, hospital):
    with pytest.raises(ValidationError) as refused:
        make_dataset(steward, enforcement=Enforcement.LOG_ONLY)
    assert "irb_waiver" in refused.value.message_dict


def test_log_only_exports_regardless_and_logs_each_violation(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    dataset = make_log_only(steward, selection={"modality": "CR"})
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    violation = AuditEvent.objects.get(action="export.violation")
    assert violation.patient_ref == str(hospital["ben"].pk)
    assert "IRB waiver W-1" in violation.legal_basis


def test_a_withdrawal_between_decide_and_write_drops_the_study(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    real = exports.unsafe_reason

    def withdraw_then_check(study, burned_in, **kwargs):
        if study.description == "MR KNEE LEFT":  # Ann changes her mind mid-export
            consent_record(patient=study.patient, purpose=Purpose.objects.get(
                code="ai-training"), decision="deny", actor=STEWARD, source="portal",
                form=current_form(), scope_kind="study", scope_value=study.study_uid)
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", withdraw_then_check)
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    assert fates(version)["MR KNEE LEFT"] == (False, "consent withdrawn during the export")


def test_the_re_check_comes_after_the_whole_batch_is_read_and_checked(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    """A batch's studies are read and checked first, then re-checked together just before
    any of them is written: a withdrawal landing while a later study of the batch is being
    checked still keeps an earlier one out (its files were not written yet)."""
    real = exports.unsafe_reason
    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")

    def withdraw_then_check(study, burned_in, **kwargs):
        if study.description == "US ABDOMEN":  # after the knee, in the same batch
            consent_record(patient=knee.patient, purpose=Purpose.objects.get(
                code="ai-training"), decision="deny", actor=STEWARD, source="portal",
                form=current_form(), scope_kind="study", scope_value=knee.study_uid)
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", withdraw_then_check)
    assert knee.pk < ImagingStudy.objects.get(description="US ABDOMEN").pk
    dataset = make_dataset(steward)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert fates(version)["MR KNEE LEFT"] == (False, "consent withdrawn during the export")
    context = DeidContext(secret=bytes.fromhex(dataset.secret))
    assert not (version_dir(version) / context.remap_uid(knee.study_uid)).exists()
    assert version.studies.filter(included=True).count() == 1  # Ann's chest only


def test_tampering_after_export_fails_verification(steward, hospital, data_dir,
                                                  django_capture_on_commit_callbacks):
    out = version_dir(run_export(make_dataset(steward), django_capture_on_commit_callbacks))
    a_file = next(out.rglob("*.dcm"))
    a_file.write_bytes(a_file.read_bytes()[:-1] + b"\x00")
    with pytest.raises(CommandError, match="changed file"):
        call_command("verify_export", str(out))


def test_an_edited_manifest_fails_verification(steward, hospital, data_dir,
                                              django_capture_on_commit_callbacks):
    out = version_dir(run_export(make_dataset(steward), django_capture_on_commit_callbacks))
    manifest = out / "manifest.json"
    manifest.write_text(manifest.read_text().replace("Acme AI Lab", "Someone Else"))
    with pytest.raises(CommandError, match="signature"):
        call_command("verify_export", str(out))


def test_exports_appear_in_the_accounting_of_disclosures(steward, hospital, data_dir,
                                                         django_capture_on_commit_callbacks):
    from audit.selectors import disclosures_for_mrn

    run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    shown = list(disclosures_for_mrn("MRN-ANN"))
    assert shown and all(e.details["recipient"] == "Acme AI Lab" for e in shown)
    assert not disclosures_for_mrn("MRN-BEN").exists()


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"selection": {}}, "selection"),
    ({"enforcement": "sometimes"}, "enforcement"),
    ({"deid_options": ["keep-everything"]}, "deid_options"),
    ({"burned_in_text": "blur"}, "burned_in_text"),
    ({"name": "   "}, "name"),
    ({"recipient": ""}, "recipient"),
])
def test_bad_datasets_are_refused(steward, hospital, kwargs, field):
    with pytest.raises(ValidationError) as refused:
        make_dataset(steward, **kwargs)
    assert field in refused.value.message_dict


@pytest.mark.parametrize(("ages", "expected"), [
    ({"min_age": 50}, {"MRN-ANN"}),            # Ann was 55 at her scans, Ben 45
    ({"max_age": 50}, {"MRN-BEN"}),
    ({"min_age": 45, "max_age": 55}, {"MRN-ANN", "MRN-BEN"}),
    ({"min_age": 56}, set()),
])
def test_selection_by_age_at_the_time_of_the_study(hospital, ages, expected):
    from datasets.selection import selected_studies

    chosen = selected_studies({"modality": "CR", **ages})
    assert {s.patient.mrn for s in chosen} == expected


def test_a_study_whose_file_vanished_is_left_out_with_the_reason(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    from registry.models import Instance

    knee = Instance.objects.filter(series__study__description="MR KNEE LEFT").first()
    Path(knee.path).unlink()
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert fates(version)["MR KNEE LEFT"] == (
        False, "files missing or unreadable since registration (FileNotFoundError)")
    call_command("verify_export", str(version_dir(version)))


def test_an_export_that_keeps_failing_is_marked_failed_not_left_running(
        steward, hospital, settings, tmp_path, django_capture_on_commit_callbacks):
    from outbox.models import MessageStatus, OutboxMessage
    from outbox.services import MAX_ATTEMPTS, outbox_deliver

    settings.EXPORT_DIR = tmp_path / "not-a-directory"
    settings.EXPORT_DIR.write_text("a file where the export directory should be")
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.RUNNING
    assert version.error.startswith("will retry after:")
    message = OutboxMessage.objects.get(kind="datasets.export_requested")
    for _ in range(MAX_ATTEMPTS - 1):
        OutboxMessage.objects.filter(pk=message.pk).update(lease_until=None)
        outbox_deliver(message_id=message.pk)
    version.refresh_from_db()
    assert OutboxMessage.objects.get(pk=message.pk).status == MessageStatus.FAILED
    assert version.status == VersionStatus.FAILED
    assert version.error.startswith("gave up after repeated failures")
    failed = AuditEvent.objects.get(action="export.failed")
    assert failed.outcome == "failure" and failed.dataset_ref == str(version.dataset_id)


def test_a_head_volume_known_only_from_its_description_is_left_out(db):
    from datasets.selection import unsafe_reason
    from tests.consent.factories import make_patient, make_series, make_study

    patient = make_patient()
    described = make_study(patient, ("CR", "CHEST"))
    make_series(described, f"{described.study_uid}.7", "MR", "", description="AX T1 BRAIN")
    described.refresh_from_db()
    described.modalities = "CR\\MR"
    assert "3D head study" in unsafe_reason(described, [], defaced_upstream=False)
    assert unsafe_reason(described, [], defaced_upstream=True) == ""


def test_a_volume_whose_anatomy_is_unknown_fails_closed(db):
    from datasets.selection import unsafe_reason
    from tests.consent.factories import make_patient, make_series, make_study

    patient = make_patient()
    unknown = make_study(patient, ("CR", "CHEST"))
    make_series(unknown, f"{unknown.study_uid}.7", "CT", "")
    unknown.modalities = "CR\\CT"
    assert "anatomy is not recorded" in unsafe_reason(unknown, [], defaced_upstream=False)
    knee = make_study(patient, ("MR", "KNEE"))
    knee.modalities = "MR"
    assert unsafe_reason(knee, [], defaced_upstream=False) == ""


def test_a_body_part_selection_takes_the_region_the_anatomy_lies_in(db):
    from datasets.selection import selected_studies
    from tests.consent.factories import make_patient, make_study

    patient = make_patient()
    brain = make_study(patient, ("MR", "BRAIN"))
    chest = make_study(patient, ("CT", "CHEST"))
    assert list(selected_studies({"body_part": "HEAD"})) == [brain]
    assert list(selected_studies({"body_part": "CHEST"})) == [chest]


@pytest.mark.parametrize("enforcement", ["exclude", "log-only"])
def test_the_preview_counts_what_the_run_leaves_out_and_why(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, enforcement):
    """Reproduction: the preview said "included 45" where the run included 30: it counted
    consent only, not the safety exclusions."""
    from collections import Counter

    from datasets.exports import export_preview

    dataset = (make_log_only(steward) if enforcement == "log-only" else make_dataset(steward))
    preview = export_preview(dataset)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    ran = VersionStudy.objects.filter(version=version)
    assert preview["selected"] == ran.count() == 5
    run_reasons = Counter(ran.filter(included=False).values_list("reason", flat=True))
    # Only the pixel check, which reads the images, can leave out more than foreseen: the
    # ultrasound (pydicom's, with "Gen THI" drawn on it) is announced as one to check.
    found = Counter({r: n for r, n in run_reasons.items() if "found in the pixels" in r})
    assert preview["pixel_checks"] == 1 and found.total() == 1
    assert preview["included"] - found.total() == ran.filter(included=True).count()
    assert preview["excluded"] == dict(run_reasons - found)
    assert any("3D head" in reason for reason in preview["excluded"])


def test_an_interrupted_run_resumes_where_it_stopped(steward, hospital, data_dir,
                                                     django_capture_on_commit_callbacks):
    """The resume path, in this process on either database: a run that dies part-way (here
    the disk refuses one study's folder) leaves a running version with the studies before
    it recorded; the next run records each remaining study once and publishes it whole."""
    from datasets.deid import DeidContext
    from datasets.manifest import verify_manifest
    from datasets.selection import selected_studies
    from datasets.signing import published_keys

    dataset = make_dataset(steward)
    with django_capture_on_commit_callbacks(execute=False):  # the job is run by hand below
        version = exports.export_request(dataset=dataset, actor=STEWARD)
    order = list(selected_studies(dataset.selection))
    wanted = {"CR CHEST PA", "MR KNEE LEFT"}
    held = [s for s in order if s.description in wanted and s.patient == hospital["ann"]][-1]
    position = order.index(held)
    context = DeidContext(secret=bytes.fromhex(dataset.secret))
    staging = version_dir(version, staging=True)
    staging.mkdir(parents=True)
    # A file where the study's folder must go: writing the study fails with the disk's error.
    blocker = staging / context.remap_uid(held.study_uid)
    blocker.write_text("in the way")

    with pytest.raises(OSError):
        export_run(version_id=version.pk)
    version.refresh_from_db()
    assert version.status == VersionStatus.RUNNING
    assert version.studies_done == position > 0
    assert not version_dir(version).exists()
    done_before = set(VersionStudy.objects.filter(version=version).values_list("study_id",
                                                                               flat=True))
    assert done_before == {s.pk for s in order[:position]}

    blocker.unlink()
    again = export_run(version_id=version.pk)
    assert again.status == VersionStatus.COMPLETE
    assert again.studies_done == again.studies_total == len(order)
    fates_by_study = VersionStudy.objects.filter(version=version)
    assert sorted(fates_by_study.values_list("study_id", flat=True)) == sorted(
        s.pk for s in order)  # each study once: none decided twice after the resume
    decided = AuditEvent.objects.filter(action__in=["export.included", "export.excluded"],
                                        dataset_ref=str(dataset.pk))
    assert decided.count() == len(order)
    assert fates_by_study.get(study=held).included is True
    assert verify_manifest(version_dir(again), published_keys()) == []
    assert not version_dir(again, staging=True).exists()


def test_a_worker_that_finds_every_shard_held_leaves_the_version_to_their_holders(
        steward, hospital, data_dir, django_capture_on_commit_callbacks):
    from audit.ledger import Actor
    from datasets.models import ExportShard
    from datasets.shards import shard_claim

    # Requested, its job not run yet.
    version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    actor = Actor.system("another worker")
    assert exports._plan(version, actor) is False
    planned = list(ExportShard.objects.filter(version=version).values_list("pk", "number"))
    # A planner that waited for the lock finds the plan made and makes no second one.
    assert exports._plan(version, actor) is False
    assert list(ExportShard.objects.filter(version=version).values_list(
        "pk", "number")) == planned
    # Another worker holds every study shard (the manifest waits for them).
    held = []
    while (shard := shard_claim(version_id=version.pk, worker="elsewhere:1")) is not None:
        held.append(shard.pk)
    assert held
    before = (AuditEvent.objects.count(), VersionStudy.objects.count())
    again = export_run(version_id=version.pk)
    assert again.status == VersionStatus.RUNNING
    assert (AuditEvent.objects.count(), VersionStudy.objects.count()) == before
    assert set(ExportShard.objects.filter(pk__in=held).values_list(
        "claimed_by", flat=True)) == {"elsewhere:1"}
    assert not version_dir(version).exists()
