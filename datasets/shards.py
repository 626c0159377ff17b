"""Shards: one export shared by every worker process, on one machine or many.

A version's studies are cut into shards when the run is planned. A worker claims the next
free shard with ``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never wait on, nor take, the
same one) and holds it by a lease that it renews while it writes; every batch of fates it
records renews the lease in the same transaction and is refused if the lease was lost, so
a worker taken for dead cannot record a study a second time. A shard whose lease ran out
(its worker was killed) is claimed again by the next worker that looks: the sweeper below
wakes one every minute. Shard 0 is the manifest: it becomes claimable only when every other
shard is done, so the manifest is written once, by one worker, over everything.

The export directory must be storage every worker mounts at the same path
(``CONSENTRY_DATA_DIR``/exports): each worker writes its studies' files there."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import timedelta
from itertools import batched

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from datasets.models import DatasetVersion, ExportShard, ShardStatus, VersionStatus
from outbox.models import MessageStatus, OutboxMessage
from outbox.services import outbox_publish

EXPORT_HELP = "datasets.export_help"
MANIFEST = 0
# Wake at most this many more workers per export: more than there are worker processes
# only costs a message each (a worker finding nothing to claim returns at once).
MAX_HELPERS = 64


class ShardLost(Exception):
    """This worker's lease ran out and another worker may hold the shard now."""


def worker_name() -> str:
    """Who holds a claim: this machine and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lease() -> timedelta:
    return timedelta(seconds=settings.EXPORT_SHARD_LEASE_SECONDS)


def shards_plan(*, version: DatasetVersion, study_ids: Iterable[int]) -> int:
    """Cut the version's studies (in order) into shards, plus the manifest shard, and wake
    helpers; in the caller's transaction. Returns the number of study shards."""
    size = max(1, settings.EXPORT_SHARD_STUDIES)
    count = 0
    for chunk in batched(enumerate(batched(study_ids, size), start=1), 500):
        ExportShard.objects.bulk_create(
            [ExportShard(version=version, number=n, study_ids=list(ids)) for n, ids in chunk])
        count += len(chunk)
    ExportShard.objects.create(version=version, number=MANIFEST)
    # The planner works too: one helper fewer than there are shards.
    for _ in range(min(count - 1, MAX_HELPERS)):
        outbox_publish(kind=EXPORT_HELP, payload={"version_id": version.pk})
    return count


def shard_claim(*, version_id: int, worker: str) -> ExportShard | None:
    """The next shard nobody holds (pending, or its lease over), now held by ``worker``;
    the manifest shard only when every other shard is done. None: nothing to take."""
    now = timezone.now()
    free = Q(status=ShardStatus.PENDING) | Q(status=ShardStatus.RUNNING, lease_until__lte=now)
    with transaction.atomic():
        shards = ExportShard.objects.select_for_update(skip_locked=True).filter(
            free, version_id=version_id)
        shard = shards.filter(number__gt=MANIFEST).order_by("number").first()
        if shard is None:
            unfinished = ExportShard.objects.filter(version_id=version_id,
                                                    number__gt=MANIFEST).exclude(
                status=ShardStatus.DONE)
            if unfinished.exists():
                return None  # others hold the rest; the last of them writes the manifest
            shard = shards.filter(number=MANIFEST).first()
            if shard is None:
                return None
        shard.status = ShardStatus.RUNNING
        shard.claimed_by = worker
        shard.lease_until = now + lease()
        shard.attempts += 1
        shard.save(update_fields=["status", "claimed_by", "lease_until", "attempts"])
    return shard


def shard_renew(*, shard: ExportShard, worker: str) -> None:
    """Extend the lease; in the caller's transaction, so what it writes commits only if
    this worker still held the shard. Raises ShardLost otherwise."""
    # Held means claimed by this worker and not finished: a lease that ran out is still
    # this worker's until another claims the shard (which writes its own name here).
    renewed = ExportShard.objects.filter(
        pk=shard.pk, claimed_by=worker, status=ShardStatus.RUNNING).update(
        lease_until=timezone.now() + lease())
    if not renewed:
        raise ShardLost(f"shard {shard.number} of version {shard.version_id} is no longer "
                        f"held by {worker}")


def shard_finish(*, shard: ExportShard, worker: str) -> None:
    """Done: in the caller's transaction (with the shard's last fates)."""
    shard_renew(shard=shard, worker=worker)
    ExportShard.objects.filter(pk=shard.pk).update(status=ShardStatus.DONE,
                                                   finished_at=timezone.now())


def shard_release(*, shard: ExportShard, worker: str) -> None:
    """Give the shard back after a failure, so a retry need not wait for the lease."""
    ExportShard.objects.filter(pk=shard.pk, claimed_by=worker,
                               status=ShardStatus.RUNNING).update(
        status=ShardStatus.PENDING, lease_until=None)


def version_planned(version_id: int) -> bool:
    return ExportShard.objects.filter(version_id=version_id).exists()


def export_shards_sweep() -> int:
    """Wake a worker for each running version with a shard nobody holds (a dead worker's
    lease ran out, or a worker died before claiming the next one or the manifest), unless
    a wake-up is already waiting. Returns how many were woken."""
    now = timezone.now()
    free = Q(status=ShardStatus.PENDING) | Q(status=ShardStatus.RUNNING, lease_until__lte=now)
    unfinished = ExportShard.objects.filter(version_id=OuterRef("version_id"),
                                            number__gt=MANIFEST).exclude(
        status=ShardStatus.DONE)
    claimable = Q(number__gt=MANIFEST) | Q(number=MANIFEST) & ~Exists(unfinished)
    stalled = (ExportShard.objects.filter(free, claimable,
                                          version__status=VersionStatus.RUNNING)
               .values_list("version_id", flat=True).distinct())
    woken = 0
    for version_id in stalled:
        waiting = OutboxMessage.objects.filter(
            kind=EXPORT_HELP, status=MessageStatus.PENDING, payload__version_id=version_id
        ).filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        if waiting.exists():
            continue
        with transaction.atomic():
            outbox_publish(kind=EXPORT_HELP, payload={"version_id": version_id})
        woken += 1
    return woken


def progress_add(*, version_id: int, studies: int, files: int, size: int) -> None:
    """Counted over every shard, in the caller's transaction."""
    DatasetVersion.objects.filter(pk=version_id).update(
        studies_done=F("studies_done") + studies, files_written=F("files_written") + files,
        bytes_written=F("bytes_written") + size)
