"""Exports gated on consent (DESIGN.md, "Exports").

An export runs as a job that any number of worker processes share (datasets/shards.py):
it is planned once and cut into shards of studies; each worker claims shard after shard
and decides its studies (set-based, per shard); then, a batch of studies at a time, checks
each can be made safe, re-checks consent for the batch just before writing it (a withdrawal
during the run drops the study), de-identifies each instance into a staging directory
(datasets/deid_write.py) and records the batch's fates with their ledger events
(datasets/fates.py). The manifest is
written and signed last, by the one worker that claims the manifest shard once every study
shard is done, and only then is the staging directory renamed to the published one. A
killed worker leaves a staging directory, a version that is not complete and a shard whose
lease runs out; the next worker to look resumes it where it stopped.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from pydicom.errors import InvalidDicomError

from audit import codes, ledger
from audit.ledger import Actor
from audit.vouching import vouch, vouched_details
from consent.engine import (
    FAIL_CLOSED,
    ConsentDecision,
    PurposeTree,
    decide_many,
    decide_tally,
)
from consent.models import Policy, Purpose
from datasets.approvals import approval_requested, ensure_may_run
from datasets.burned_in import PixelCheck, study_pixel_check
from datasets.deid import ConsentStamp, DeidContext, Option
from datasets.deid_write import read_source, write_deidentified
from datasets.delivery import delivery_queue
from datasets.fates import BATCH_SECONDS, BATCH_STUDIES, Fate, FateBatch, fates_record
from datasets.manifest import MANIFEST_JSON, write_manifest
from datasets.models import (
    BurnedInText,
    Dataset,
    DatasetVersion,
    Enforcement,
    ExportShard,
    VersionStatus,
    VersionStudy,
)
from datasets.selection import (
    SAFETY_FLAGS,
    needs_pixel_check,
    safety_columns,
    safety_verdict,
    selected_studies,
    selection_clean,
    unsafe_reason,
    volume_regions,
)
from datasets.selectors import excluded_by_reason
from datasets.shards import (
    MANIFEST,
    ShardLost,
    shard_claim,
    shard_finish,
    shard_release,
    shards_plan,
    version_planned,
    worker_name,
)
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
    opened). A withdrawal or a file gone bad before the run can still change the count.
    Counted by the database (decide_tally over the safety facts): a few rows come back
    however many studies are selected."""
    tally = decide_tally(safety_columns(selected_studies(dataset.selection)),
                         dataset.purpose, timezone.now(), by=SAFETY_FLAGS)
    log_only = dataset.enforcement == Enforcement.LOG_ONLY
    opt_out = dataset.purpose.default_policy == Policy.OPT_OUT
    excluded: Counter[str] = Counter()
    selected = pixel_checks = 0
    for (verdict, *flags), count in tally.items():
        selected += count
        allowed = verdict == 1 or (verdict == 0 and opt_out)
        if not allowed and not log_only:
            excluded[_consent_reason_for(by_default=verdict == 0)] += count
            continue
        unsafe, to_check = safety_verdict(
            tuple(flags), defaced_upstream=dataset.defaced_upstream,
            redact_text=dataset.burned_in_text == BurnedInText.REDACT)
        if unsafe:
            excluded[unsafe] += count
        elif to_check:
            # Counted as included: whether text is burned into their pixels is known only
            # when a run reads them.
            pixel_checks += count
    return {"selected": selected, "included": selected - excluded.total(),
            "excluded": dict(excluded), "pixel_checks": pixel_checks}


def _consent_reason(decision: ConsentDecision) -> str:
    return _consent_reason_for(by_default=decision.by_default_policy)


def _consent_reason_for(*, by_default: bool) -> str:
    return "no consent (default policy)" if by_default else "consent refused or withdrawn"


def version_dir(version: DatasetVersion, *, staging: bool = False) -> Path:
    base = Path(settings.EXPORT_DIR) / f"dataset-{version.dataset_id}"
    return base / (f"v{version.number}.partial" if staging else f"v{version.number}")


def export_run(*, version_id: int) -> DatasetVersion:
    """The job, and each helper's share of it: plan the version once (decide in reject
    mode, cut it into shards), then claim shard after shard until none is free; whoever
    claims the manifest shard (only free once every study shard is done) publishes the
    version. Idempotent: a complete version is left alone; an interrupted one resumes."""
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
    if not version_planned(version.pk) and _plan(version, actor):
        version.refresh_from_db()
        return version  # failed: reject mode found studies without consent
    version.refresh_from_db()
    tree = PurposeTree.load()
    context = DeidContext(secret=bytes.fromhex(dataset.secret),
                          options=frozenset(dataset.deid_options))
    worker = worker_name()
    while (shard := shard_claim(version_id=version.pk, worker=worker)) is not None:
        try:
            if shard.number == MANIFEST:
                _publish(version, shard, actor, worker)
                break
            _export_shard(version, shard, context, actor, tree, worker)
        except ShardLost:
            continue  # taken for dead and taken over: what it recorded stands, go on
        except Exception:
            shard_release(shard=shard, worker=worker)  # the retry may take it at once
            raise
    version.refresh_from_db()
    if version.status == VersionStatus.COMPLETE:
        # Only after the commit that completed it: a deny that landed after a study's
        # re-check and before it found no complete version to notice; a later one will.
        version_withdrawals_notice(version=version)
    return version


def _plan(version: DatasetVersion, actor: Actor) -> bool:
    """Decide (reject mode) and cut the version into shards, once, whoever gets here first.
    Returns True when the version failed instead."""
    dataset = version.dataset
    with transaction.atomic():
        DatasetVersion.objects.select_for_update().get(pk=version.pk)
        if version_planned(version.pk):
            return False  # another worker planned it while this one waited for the lock
        now = timezone.now()
        version.decided_at = version.decided_at or now
        selected = selected_studies(dataset.selection)
        if dataset.enforcement == Enforcement.REJECT:
            decisions = decide_many(selected, dataset.purpose, version.decided_at)
            refused = [s for s in selected if not decisions[s.pk].allowed]
            if refused:
                _fail(version, actor, f"{len(refused)} selected studies lack consent: " +
                      ", ".join(s.study_uid for s in refused[:50]), refused, decisions)
                return True
        ids = selected.order_by("pk").values_list("pk", flat=True)
        shards_plan(version=version, study_ids=ids.iterator(chunk_size=5000))
        DatasetVersion.objects.filter(pk=version.pk).update(
            status=VersionStatus.RUNNING, studies_total=ids.count(),
            decided_at=version.decided_at)
    return False


def _export_shard(version: DatasetVersion, shard: ExportShard, context: DeidContext,
                  actor: Actor, tree: PurposeTree, worker: str) -> None:
    """Every study of the shard not decided yet (a shard taken over from a dead worker
    resumes), a batch at a time (``_export_batch``), each batch's fates written together in
    a transaction that renews the claim."""
    dataset = version.dataset
    staging = version_dir(version, staging=True)
    staging.mkdir(parents=True, exist_ok=True)
    done = set(VersionStudy.objects.filter(version=version, study_id__in=shard.study_ids)
               .values_list("study_id", flat=True))
    batch = FateBatch(version=version, actor=actor, shard=shard, worker=worker)
    remaining = set(shard.study_ids) - done
    if not remaining:
        # Every study recorded, the shard not finished: left by a worker of an earlier
        # release killed between the two (they now commit together). Deciding no study
        # would fail and leave the version stuck.
        batch.flush(finished=True)
        return
    studies = ImagingStudy.objects.filter(pk__in=remaining)
    # As of the run's decision time, so every shard decides on the same consent; the
    # re-check just before writing catches what changed since.
    decisions = decide_many(studies, dataset.purpose, version.decided_at, tree=tree)
    queue = list(studies.select_related("patient").order_by("pk"))
    try:
        while queue:
            taken = _export_batch(version, queue[:BATCH_STUDIES], decisions, context,
                                  staging, tree, batch)
            del queue[:taken]
            if queue:
                batch.flush()  # the last batch's fates commit with the shard's finish
    except ShardLost:
        raise
    except Exception:
        batch.flush()  # the studies written before the failure stay done; a retry resumes
        raise
    batch.flush(finished=True)


@dataclass
class _Ready:
    """A study read and found safe, its files held until its batch's consent re-check."""

    study: ImagingStudy
    decision: ConsentDecision
    instances: list[Instance]
    files: dict[int, str]
    headers: dict
    check: PixelCheck | None


def _export_batch(version: DatasetVersion, studies: list[ImagingStudy],
                  decisions: dict[int, ConsentDecision], context: DeidContext, staging: Path,
                  tree: PurposeTree, batch: FateBatch) -> int:
    """Up to ``studies`` (fewer when they are slow, so the claim is renewed in time): read
    each and check it can be made safe, then re-check consent for all of them in one query
    and write their files at once, so a withdrawal that lands before the re-check keeps
    the study out. Leaves their fates in ``batch``; returns how many studies it took.

    On an error, the fates of the studies before the one that failed are left in
    ``batch`` (none after it: a retry resumes exactly there)."""
    dataset = version.dataset
    log_only = dataset.enforcement == Enforcement.LOG_ONLY
    every = min(BATCH_SECONDS, settings.EXPORT_SHARD_LEASE_SECONDS / 3)
    started = time.monotonic()
    # The series facts of the safety check, one query for the batch instead of one a study.
    volumes = volume_regions(s.pk for s in studies)
    instances: dict[int, list[Instance]] = {}
    for instance in Instance.objects.filter(series__study__in=studies).select_related(
            "series").order_by("pk"):
        instances.setdefault(instance.series.study_id, []).append(instance)
    results: list[Fate | _Ready] = []
    fates: list[Fate] = []
    with ExitStack() as held:
        try:
            for study in studies:
                # A worker killed while writing this study left some of its files: start it
                # afresh, so nothing unrecorded (perhaps withdrawn since) reaches the manifest.
                shutil.rmtree(staging / context.remap_uid(study.study_uid), ignore_errors=True)
                results.append(_prepare(version, study, decisions[study.pk], context,
                                        volumes.get(study.pk, []),
                                        instances.get(study.pk, []), held))
                if time.monotonic() - started > every:
                    break
            ready = [r.study.pk for r in results if isinstance(r, _Ready)]
            # Re-check just before writing: a withdrawal since the decision above wins. Taken
            # after every study of the batch was read, checked and OCRed, so the window is
            # the batch's writing only.
            latest = _recheck(ready, dataset.purpose, tree) if ready else {}
            for result in results:
                if isinstance(result, Fate):
                    fates.append(result)
                    continue
                decision = latest.get(result.study.pk, FAIL_CLOSED)
                if not decision.allowed and not log_only:
                    fates.append(Fate(result.study, decision, included=False,
                                      reason="consent withdrawn during the export"))
                    continue
                fates.append(_write(result, decision, context, staging))
        except BaseException:
            # Only the studies before the failure: a fate recorded past it would make the
            # retry skip a study whose files were never written.
            batch.pending.extend(_prefix(results, fates))
            raise
    batch.pending.extend(fates)
    return len(results)


def _prefix(results: list[Fate | _Ready], fates: list[Fate]) -> list[Fate]:
    if fates:
        return fates  # failed writing the study after the last of these
    # Failed before writing any: the decided studies before the first one held for writing.
    done = []
    for result in results:
        if not isinstance(result, Fate):
            break
        done.append(result)
    return done


def _recheck(study_ids: list[int], purpose: Purpose, tree: PurposeTree
             ) -> dict[int, ConsentDecision]:
    # Consent that cannot be read (ConsentUnavailable) fails this attempt, as the first
    # decision does: nothing of the batch is written, and the retry decides again, rather
    # than recording the batch as withdrawn on the strength of a passing outage.
    return decide_many(ImagingStudy.objects.filter(pk__in=study_ids), purpose,
                       timezone.now(), tree=tree)


def _prepare(version: DatasetVersion, study: ImagingStudy, decision: ConsentDecision,
             context: DeidContext, volumes: list[str], instances: list[Instance],
             held: ExitStack) -> Fate | _Ready:
    """The study's fate when it is left out before its files are written, or its files
    ready to write (kept in ``held`` until the batch is written)."""
    dataset = version.dataset
    log_only = dataset.enforcement == Enforcement.LOG_ONLY
    if not decision.allowed and not log_only:
        return Fate(study, decision, included=False, reason=_consent_reason(decision))
    # Instances known only by their PACS location are fetched for this study and deleted
    # once its batch is written; a PACS that is down fails the shard's attempt (retried). A
    # study refused consent (above) is never fetched: its pixels are not needed to leave it
    # out.
    files = held.enter_context(instance_files(instances))
    try:
        # Read once: the safety check needs only Burned In Annotation, and the writer
        # reuses the same read (unless the file changed in between).
        headers = {i.pk: read_source(files[i.pk], context) for i in instances}
    except (OSError, InvalidDicomError) as exc:
        return _unreadable(study, decision, exc)
    burned_in = [h.burned_in for h in headers.values()]
    redact_text = dataset.burned_in_text == BurnedInText.REDACT
    unsafe = unsafe_reason(study, burned_in, defaced_upstream=dataset.defaced_upstream,
                           redact_text=redact_text, volumes=volumes)
    check = None
    if not unsafe and needs_pixel_check(study, burned_in):
        check = study_pixel_check([files[i.pk] for i in instances], redact_text=redact_text,
                                  header_says_text="YES" in burned_in)
        unsafe = check.refused
    if unsafe:
        return Fate(study, decision, included=False, reason=unsafe)
    return _Ready(study, decision, instances, files, headers, check)


def _write(ready: _Ready, latest: ConsentDecision, context: DeidContext, staging: Path
           ) -> Fate:
    study, check = ready.study, ready.check
    stamp = ConsentStamp("YES" if latest.allowed else "NO")
    size = 0
    for instance in ready.instances:
        source = ready.files[instance.pk]
        try:
            _, written = write_deidentified(
                source, staging, context, consent=stamp,
                boxes=check.boxes.get(source) if check else None,
                header=ready.headers[instance.pk])
        except (OSError, InvalidDicomError) as exc:
            if isinstance(exc, OSError) and exc.filename != source:
                raise  # the export directory, not the source: the job fails and retries
            shutil.rmtree(staging / context.remap_uid(study.study_uid), ignore_errors=True)
            return _unreadable(study, ready.decision, exc)
        size += written
    return Fate(study, latest, included=True, violation=not latest.allowed,
                reason=latest.reason, pseudo_uid=context.remap_uid(study.study_uid),
                files=len(ready.instances), size=size,
                pixels=check.summary if check else "",
                pseudonym=context.pseudonym(study.patient.issuer, study.patient.mrn))


def _unreadable(study: ImagingStudy, decision: ConsentDecision, exc: Exception) -> Fate:
    # A file moved or damaged since registration: leave the study out, say why, go on.
    return Fate(study, decision, included=False,
                reason=f"files missing or unreadable since registration "
                       f"({type(exc).__name__})")


def _publish(version: DatasetVersion, shard: ExportShard, actor: Actor, worker: str) -> None:
    """The manifest shard: every study is decided; sign the manifest and publish the
    staging directory whole, then mark the version complete with its ledger event."""
    dataset = version.dataset
    staging, final = version_dir(version, staging=True), version_dir(version)
    if not final.exists():
        staging.mkdir(parents=True, exist_ok=True)
        provenance = _provenance(version)
        # The manifest covers every file under the directory, so only the included studies'
        # folders may be there: a worker that lost its study shard may have written a study
        # late, one that the shard's next holder left out (withdrawn since, say).
        included = set(provenance["studies"])
        for entry in staging.iterdir():
            if entry.is_dir() and entry.name not in included:
                shutil.rmtree(entry)
        manifest_sha = write_manifest(staging, provenance)
        staging.rename(final)  # published only now, whole
    else:
        # A publisher died (or lost this shard) after the rename and before the commit: the
        # published directory is whole, its manifest written before the rename. A staging
        # directory beside it can only hold the late writes of a worker that had lost its
        # study shard: never published, and never in place of the version.
        shutil.rmtree(staging, ignore_errors=True)
        manifest_sha = hashlib.sha256((final / MANIFEST_JSON).read_bytes()).hexdigest()
    with transaction.atomic():
        shard_finish(shard=shard, worker=worker)
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


def _fail(version, actor, message, refused, decisions) -> None:
    fates_record(version=version, actor=actor, fates=[
        Fate(s, decisions[s.pk], included=False, reason=_consent_reason(decisions[s.pk]))
        for s in refused])
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.FAILED, finished_at=timezone.now(), error=message[:5000],
        decided_at=version.decided_at,
        studies_total=selected_studies(version.dataset.selection).count())


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
