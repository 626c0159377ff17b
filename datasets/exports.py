"""Exports gated on consent (DESIGN.md, "Exports").

An export runs as a job: decide for the whole selection (set-based), then study by study:
check it can be made safe, re-check consent just before writing (a withdrawal during the run
drops the study), de-identify each instance into a staging directory, and record the
study's fate with its ledger event. The manifest is written and signed last, and only then
is the staging directory renamed to the published one. A killed worker leaves a staging
directory and a version that is not complete; running the job again resumes where it
stopped.
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from pathlib import Path

import pydicom
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pydicom.errors import InvalidDicomError

from audit import codes, ledger
from audit.ledger import Actor
from audit.vouching import vouch, vouched_details
from consent.engine import ConsentDecision, PurposeTree, decide, decide_many
from consent.models import Purpose
from datasets.approvals import approval_requested, ensure_may_run
from datasets.burned_in import redact, study_pixel_check
from datasets.deid import ConsentStamp, DeidContext, Option, deidentify
from datasets.delivery import delivery_queue
from datasets.manifest import write_manifest
from datasets.models import (
    BurnedInText,
    Dataset,
    DatasetVersion,
    Enforcement,
    Pseudonym,
    VersionStatus,
    VersionStudy,
)
from datasets.selection import (
    needs_pixel_check,
    selected_studies,
    selection_clean,
    unsafe_reason,
    unsafe_reasons,
)
from datasets.selectors import excluded_by_reason
from datasets.vouched import DATASET
from datasets.withdrawals import version_withdrawals_notice
from outbox.services import outbox_publish
from registry.dicomweb import instance_files
from registry.models import ImagingStudy, Instance

EXPORT_REQUESTED = "datasets.export_requested"
SOFTWARE = "Consentry 0.1"


def dataset_create(*, name: str, purpose: Purpose, owner, recipient: str, selection: dict,
                   actor: Actor, enforcement: str = Enforcement.EXCLUDE,
                   deid_options: list[str] | None = None, irb_waiver: str = "",
                   approving_body: str = "", approver: str = "", description: str = "",
                   defaced_upstream: bool = False,
                   burned_in_text: str = BurnedInText.EXCLUDE) -> Dataset:
    if enforcement not in Enforcement.values:
        raise ValidationError({"enforcement": f"unknown mode {enforcement!r}"})
    if burned_in_text not in BurnedInText.values:
        raise ValidationError({"burned_in_text": f"choose {' or '.join(BurnedInText.values)}"})
    if enforcement == Enforcement.LOG_ONLY and not (irb_waiver and approving_body
                                                     and approver):
        raise ValidationError({"irb_waiver": "log-only needs a legal basis: IRB waiver "
                                             "number, approving body and approver"})
    options = list(deid_options if deid_options is not None else
                   [Option.MODIFIED_DATES, Option.PATIENT_CHARACTERISTICS])
    unknown = set(options) - set(Option.ALL)
    if unknown:
        raise ValidationError({"deid_options": f"unknown options {sorted(unknown)}"})
    selection = selection_clean(selection)
    for field, value in (("name", name), ("recipient", recipient)):
        if not value.strip():
            raise ValidationError({field: "required"})
    with transaction.atomic():
        dataset = Dataset.objects.create(
            name=name.strip(), purpose=purpose, owner=owner, recipient=recipient.strip(),
            description=description, enforcement=enforcement, irb_waiver=irb_waiver,
            approving_body=approving_body, approver=approver, selection=selection,
            deid_options=options, defaced_upstream=defaced_upstream,
            burned_in_text=burned_in_text,
            secret=secrets.token_hex(32))
        ledger.record(action="dataset.created", actor=actor, dataset_ref=dataset.pk,
                      purpose_code=purpose.code, legal_basis=dataset.legal_basis,
                      details=vouched_details(
                          {"name": dataset.name, "recipient": dataset.recipient,
                           "enforcement": enforcement, "selection": selection},
                          vouch(table=DATASET, row=dataset)))
        if enforcement == Enforcement.LOG_ONLY:
            approval_requested(dataset=dataset, actor=actor)
    return dataset


def export_request(*, dataset: Dataset, actor: Actor) -> DatasetVersion:
    """A new numbered version, queued durably for a worker."""
    ensure_may_run(dataset)
    with transaction.atomic():
        last = (DatasetVersion.objects.select_for_update().filter(dataset=dataset)
                .order_by("-number").first())
        version = DatasetVersion.objects.create(
            dataset=dataset, number=(last.number + 1) if last else 1,
            requested_by=actor.label)
        # The job runs as the system; this names who asked for the disclosure.
        ledger.record(action="dataset.export_requested", actor=actor, dataset_ref=dataset.pk,
                      purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
                      details={"version": version.number, "recipient": dataset.recipient})
        outbox_publish(kind=EXPORT_REQUESTED, payload={"version_id": version.pk})
    return version


def export_preview(dataset: Dataset) -> dict:
    """How many studies would be included and excluded, by reason, as a run would decide
    now: consent first, then the safety rules on what registration stored (no file is
    opened). A withdrawal or a file gone bad before the run can still change the count."""
    selected = selected_studies(dataset.selection)
    decisions = decide_many(selected, dataset.purpose, timezone.now())
    log_only = dataset.enforcement == Enforcement.LOG_ONLY
    excluded = Counter(_consent_reason(d) for d in decisions.values()
                       if not d.allowed and not log_only)
    unsafe, to_check = unsafe_reasons(
        selected, defaced_upstream=dataset.defaced_upstream,
        redact_text=dataset.burned_in_text == BurnedInText.REDACT)
    excluded.update(reason for pk, reason in unsafe.items()
                    if decisions[pk].allowed or log_only)
    # Counted as included: whether text is burned into their pixels is known only when a
    # run reads them.
    pixel_checks = sum(1 for pk in to_check if decisions[pk].allowed or log_only)
    return {"selected": len(decisions), "included": len(decisions) - excluded.total(),
            "excluded": dict(excluded), "pixel_checks": pixel_checks}


def _consent_reason(decision: ConsentDecision) -> str:
    return "no consent (default policy)" if decision.by_default_policy else \
        "consent refused or withdrawn"


def version_dir(version: DatasetVersion, *, staging: bool = False) -> Path:
    base = Path(settings.EXPORT_DIR) / f"dataset-{version.dataset_id}"
    return base / (f"v{version.number}.partial" if staging else f"v{version.number}")


def export_run(*, version_id: int) -> DatasetVersion:
    """The job. Idempotent: a complete version is left alone; an interrupted one resumes."""
    version = DatasetVersion.objects.select_related("dataset", "dataset__purpose").get(
        pk=version_id)
    if version.status == VersionStatus.COMPLETE:
        # A worker that died between completing and checking for withdrawals resumes here.
        version_withdrawals_notice(version=version)
        return version
    if version.status == VersionStatus.FAILED:
        return version
    dataset = version.dataset
    actor = Actor.system(f"export of dataset {dataset.pk} v{version.number}")
    studies = list(selected_studies(dataset.selection))
    tree = PurposeTree.load()
    now = timezone.now()
    decisions = decide_many(selected_studies(dataset.selection), dataset.purpose, now,
                            tree=tree)
    # The first run's decision time; the manifest reports it, so keep it on this object
    # too (it was loaded before: an uninterrupted run's manifest said null).
    version.decided_at = version.decided_at or now
    version.status = VersionStatus.RUNNING
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.RUNNING, studies_total=len(studies),
        decided_at=version.decided_at)

    refused = [s for s in studies if not decisions[s.pk].allowed]
    if dataset.enforcement == Enforcement.REJECT and refused:
        return _fail(version, actor, f"{len(refused)} selected studies lack consent: " +
                     ", ".join(s.study_uid for s in refused[:50]), refused, decisions)

    staging = version_dir(version, staging=True)
    staging.mkdir(parents=True, exist_ok=True)
    context = DeidContext(secret=bytes.fromhex(dataset.secret),
                          options=frozenset(dataset.deid_options))
    done = set(VersionStudy.objects.filter(version=version).values_list("study_id", flat=True))
    for study in studies:
        if study.pk in done:
            continue  # resumed: this study's fate is already recorded
        # A worker killed while writing this study left some of its files: start it afresh,
        # so nothing unrecorded (perhaps withdrawn since) reaches the manifest.
        shutil.rmtree(staging / context.remap_uid(study.study_uid), ignore_errors=True)
        instances = list(Instance.objects.filter(series__study=study).order_by("pk"))
        # Instances known only by their PACS location are fetched for this study and
        # deleted once it is written; a PACS that is down fails the attempt (retried).
        # A study refused consent is never fetched: its pixels are not needed to leave it out.
        wanted = decisions[study.pk].allowed or dataset.enforcement == Enforcement.LOG_ONLY
        with instance_files(instances if wanted else []) as files:
            _export_study(version, study, decisions[study.pk], context, staging, actor,
                          tree, instances, files)

    manifest_sha = write_manifest(staging, _provenance(version))
    final = version_dir(version)
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)  # published only now, whole
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.COMPLETE, finished_at=timezone.now(),
            manifest_sha256=manifest_sha, error="")
        ledger.record(action="export.delivered", event_code=codes.EXPORT, actor=actor,
                      dataset_ref=dataset.pk, purpose_code=dataset.purpose.code,
                      legal_basis=dataset.legal_basis,
                      details={"version": version.number, "recipient": dataset.recipient,
                               "manifest_sha256": manifest_sha})
        # Sending to the dataset's destination, if it has one, is queued with the commit.
        delivery_queue(version=version)
    version.refresh_from_db()
    # Only after the commit above: a deny that landed after a study's re-check and before
    # this found no complete version to notice; one landing later finds this one complete.
    version_withdrawals_notice(version=version)
    return version


def _export_study(version: DatasetVersion, study: ImagingStudy, decision: ConsentDecision,
                  context: DeidContext, staging: Path, actor: Actor,
                  tree: PurposeTree, instances: list[Instance], files: dict[int, str]
                  ) -> None:
    dataset = version.dataset
    log_only = dataset.enforcement == Enforcement.LOG_ONLY
    if not decision.allowed and not log_only:
        _record_fate(version, study, actor, decision, included=False,
                     reason=_consent_reason(decision))
        return
    try:
        headers = [pydicom.dcmread(files[i.pk], stop_before_pixels=True) for i in instances]
    except (OSError, InvalidDicomError) as exc:
        # A file moved or damaged since registration: leave the study out, say why, go on.
        _record_fate(version, study, actor, decision, included=False,
                     reason=f"files missing or unreadable since registration "
                            f"({type(exc).__name__})")
        return
    burned_in = [str(h.get("BurnedInAnnotation", "") or "").upper() for h in headers]
    redact_text = dataset.burned_in_text == BurnedInText.REDACT
    unsafe = unsafe_reason(study, burned_in, defaced_upstream=dataset.defaced_upstream,
                           redact_text=redact_text)
    check = None
    if not unsafe and needs_pixel_check(study, burned_in):
        check = study_pixel_check([files[i.pk] for i in instances], redact_text=redact_text,
                                  header_says_text="YES" in burned_in)
        unsafe = check.refused
    if unsafe:
        _record_fate(version, study, actor, decision, included=False, reason=unsafe)
        return
    # Re-check just before writing: a withdrawal since the decision above wins.
    latest = decide(study, dataset.purpose, timezone.now(), tree=tree)
    if not latest.allowed and not log_only:
        _record_fate(version, study, actor, latest, included=False,
                     reason="consent withdrawn during the export")
        return
    written = 0
    size = 0
    pseudo_uid = context.remap_uid(study.study_uid)
    for instance in instances:
        ds = pydicom.dcmread(files[instance.pk])
        if check and check.boxes.get(files[instance.pk]):
            redact(ds, check.boxes[files[instance.pk]])
        ds = deidentify(ds, context, consent=ConsentStamp("YES" if latest.allowed else "NO"))
        target = staging / ds.StudyInstanceUID / ds.SeriesInstanceUID / \
            f"{ds.SOPInstanceUID}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
        written += 1
        size += target.stat().st_size
    Pseudonym.objects.get_or_create(
        dataset=dataset, patient_id=study.patient_id,
        defaults={"pseudonym": context.pseudonym(study.patient.issuer, study.patient.mrn)})
    _record_fate(version, study, actor, latest, included=True, violation=not latest.allowed,
                 reason=latest.reason, pseudo_uid=pseudo_uid, files=written, size=size,
                 pixels=check.summary if check else "")


def _record_fate(version, study, actor, decision, *, included: bool, reason: str,
                 violation: bool = False, pseudo_uid: str = "", files: int = 0,
                 size: int = 0, pixels: str = "") -> None:
    dataset = version.dataset
    action = ("export.violation" if violation else "export.included") if included else \
        "export.excluded"
    with transaction.atomic():
        VersionStudy.objects.create(version=version, study=study, included=included,
                                    violation=violation, reason=reason,
                                    pseudo_study_uid=pseudo_uid, files=files)
        ledger.record(
            action=action, event_code=codes.EXPORT, actor=actor, patient_ref=study.patient_id,
            study_uid=study.study_uid, dataset_ref=dataset.pk,
            purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
            consent_record_ids=list(decision.record_ids), reason=reason,
            outcome="success" if included else "denied",
            details={"version": version.number, "recipient": dataset.recipient,
                     "pseudonymous_study_uid": pseudo_uid, "files": files,
                     **({"pixels": pixels} if pixels else {})})
        DatasetVersion.objects.filter(pk=version.pk).update(
            studies_done=F("studies_done") + 1, files_written=F("files_written") + files,
            bytes_written=F("bytes_written") + size)


def _fail(version, actor, message, refused, decisions) -> DatasetVersion:
    for study in refused:
        if not VersionStudy.objects.filter(version=version, study=study).exists():
            _record_fate(version, study, actor, decisions[study.pk], included=False,
                         reason=_consent_reason(decisions[study.pk]))
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.FAILED, finished_at=timezone.now(), error=message[:5000])
    version.refresh_from_db()
    return version


def _provenance(version: DatasetVersion) -> dict:
    dataset = version.dataset
    fates = VersionStudy.objects.filter(version=version)
    return {
        "dataset": dataset.name, "version": version.number,
        "purpose": dataset.purpose.code, "recipient": dataset.recipient,
        "legal_basis": dataset.legal_basis or "patient consent",
        "enforcement": dataset.enforcement,
        "consent_rule_revision": "DESIGN.md consent decision rule, 2026",
        "deidentification": f"DICOM PS3.15 Table E.1-1 rev. 2024e, options "
                            f"{sorted(dataset.deid_options)}",
        "software": SOFTWARE,
        "decided_at": version.decided_at.isoformat() if version.decided_at else None,
        "studies": sorted(fates.filter(included=True).values_list("pseudo_study_uid",
                                                                  flat=True)),
        "excluded_by_reason": excluded_by_reason(version),
    }


def export_job_handler(payload: dict) -> None:
    """Outbox handler: run (or resume) the version. A failure is shown on the version while
    the outbox retries; the retry resumes where this attempt stopped."""
    try:
        export_run(version_id=payload["version_id"])
    except Exception as exc:
        DatasetVersion.objects.filter(
            pk=payload["version_id"], status__in=[VersionStatus.QUEUED, VersionStatus.RUNNING]
        ).update(error=f"will retry after: {type(exc).__name__}: {exc}"[:5000])
        raise


def export_give_up(payload: dict, error: str) -> None:
    """The outbox has stopped retrying: the version is failed, its staging removed."""
    version = DatasetVersion.objects.select_related("dataset__purpose").get(
        pk=payload["version_id"])
    if version.status == VersionStatus.COMPLETE:
        return
    shutil.rmtree(version_dir(version, staging=True), ignore_errors=True)
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.FAILED, finished_at=timezone.now(),
            error=f"gave up after repeated failures: {error}"[:5000])
        ledger.record(action="export.failed", event_code=codes.EXPORT, outcome="failure",
                      actor=Actor.system(f"export of dataset {version.dataset_id} "
                                         f"v{version.number}"),
                      dataset_ref=version.dataset_id,
                      purpose_code=version.dataset.purpose.code, reason=error[:500],
                      details={"version": version.number})
