"""Registering a large folder in the background, spread over every worker process.

A job lists its files when it is queued and cuts them into shards of
``CONSENTRY_INGEST_SHARD_FILES``, each with its own outbox message committed with the job:
any worker process that mounts the files (on this machine or another) takes the next shard,
so a folder of millions of files is registered by all of them at once, as exports are. A
shard is safe to run twice (registration is idempotent), so a redelivered message or a
worker killed mid-shard costs time, never a duplicate. The job is done when its last shard
is, with the shards' summaries added up in file order."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor
from registry.models import IngestJob, IngestShard, IngestStatus
from registry.registration import dicom_ingest_paths, paths_to_files

INGEST_REQUESTED = "dicom.ingest_requested"


def ingest_job_queue(*, paths: list[str], actor: Actor,
                     files: list[Path] | None = None) -> IngestJob:
    """Hand a registration to the workers, durably: the job, its shards and one message
    per shard commit together. ``files``: the walk of ``paths``, when the caller has it."""
    from outbox.services import outbox_publish

    files = sorted(paths_to_files(paths) if files is None else files)
    size = max(1, settings.CONSENTRY_INGEST_SHARD_FILES)
    with transaction.atomic():
        job = IngestJob.objects.create(paths=[os.fspath(Path(p).resolve()) for p in paths],
                                       requested_by=actor.label)
        # Sorted paths keep a study's files (one folder) in one shard, mostly: two shards
        # that share a study still register it once (dicom_register retries on conflict).
        shards = IngestShard.objects.bulk_create(
            IngestShard(job=job, number=n, files=[os.fspath(f) for f in files[at:at + size]])
            for n, at in enumerate(range(0, len(files), size)))
        for shard in shards:
            outbox_publish(kind=INGEST_REQUESTED,
                           payload={"job_id": job.pk, "shard": shard.number})
        if not shards:  # nothing to register: done at once, with an empty summary
            IngestJob.objects.filter(pk=job.pk).update(
                status=IngestStatus.DONE, finished_at=timezone.now(),
                summary=_added_up([]))
    return job


def ingest_message_run(payload: dict) -> None:
    """Outbox handler: one shard; a message from before shards existed, the whole job."""
    if "shard" in payload:
        ingest_shard_run(job_id=payload["job_id"], number=payload["shard"])
    else:
        ingest_job_run(job_id=payload["job_id"])


def ingest_shard_run(*, job_id: int, number: int) -> None:
    shard = IngestShard.objects.select_related("job").get(job_id=job_id, number=number)
    if shard.status == IngestStatus.DONE:
        return
    IngestJob.objects.filter(pk=job_id, status=IngestStatus.QUEUED).update(
        status=IngestStatus.RUNNING, started_at=timezone.now())
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        summary = dicom_ingest_paths(
            paths=shard.files, source="worker", correlation_id=f"ingest-job-{job_id}",
            actor=Actor.system(f"ingest job {job_id} for {shard.job.requested_by}"))
    except Exception as exc:
        # Shown on the job until a retry of this shard succeeds; the outbox retries it.
        IngestShard.objects.filter(pk=shard.pk).update(
            status=IngestStatus.FAILED, processed_by=worker,
            summary={"error": f"{type(exc).__name__}: {exc}"})
        IngestJob.objects.filter(pk=job_id).update(status=IngestStatus.FAILED)
        raise
    with transaction.atomic():
        # The job's row is the lock: of two shards finishing at once, the second to commit
        # sees the first done, so exactly one of them closes the job.
        job = IngestJob.objects.select_for_update().get(pk=job_id)
        IngestShard.objects.filter(pk=shard.pk).update(
            status=IngestStatus.DONE, summary=summary.as_dict(), processed_by=worker,
            finished_at=timezone.now())
        # Only the statuses of shards not done: summaries are read once, by the last.
        open_statuses = set(job.shards.exclude(status=IngestStatus.DONE).values_list(
            "status", flat=True))
        if not open_statuses:
            job.status, job.finished_at = IngestStatus.DONE, timezone.now()
            job.summary = _added_up(list(job.shards.order_by("number").values_list(
                "summary", flat=True)))
        elif job.status == IngestStatus.FAILED and IngestStatus.FAILED not in open_statuses:
            job.status = IngestStatus.RUNNING  # the failed shard has since succeeded
        job.save(update_fields=["status", "finished_at", "summary"])


def _added_up(summaries: list[dict]) -> dict:
    total = {"registered": 0, "known": 0, "conflict": 0, "rejected": 0, "problems": []}
    for summary in summaries:
        for key in ("registered", "known", "conflict", "rejected"):
            total[key] += summary[key]
        total["problems"].extend(summary["problems"])
    return total


def ingest_job_run(*, job_id: int) -> None:
    """A job queued before shards existed (its message names no shard): walked and
    registered whole, by the worker that takes it. Safe to run twice."""
    job = IngestJob.objects.get(pk=job_id)
    if job.status == IngestStatus.DONE:
        return
    IngestJob.objects.filter(pk=job.pk).update(status=IngestStatus.RUNNING,
                                               started_at=timezone.now())
    try:
        summary = dicom_ingest_paths(paths=job.paths, actor=Actor.system(
            f"ingest job {job.pk} for {job.requested_by}"), source="worker",
            correlation_id=f"ingest-job-{job.pk}")
    except Exception as exc:
        IngestJob.objects.filter(pk=job.pk).update(
            status=IngestStatus.FAILED, finished_at=timezone.now(),
            summary={"error": f"{type(exc).__name__}: {exc}"})
        raise
    IngestJob.objects.filter(pk=job.pk).update(
        status=IngestStatus.DONE, finished_at=timezone.now(), summary=summary.as_dict())
