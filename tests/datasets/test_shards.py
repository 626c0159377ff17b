"""Shards of an export: claimed in order, one holder at a time, taken over after a lease
runs out; the manifest shard only once every study shard is done; a worker that lost its
shard records nothing; the sweeper wakes one worker per stalled version."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from audit.ledger import Actor
from consent.engine import ConsentDecision
from datasets.fates import Fate, FateBatch
from datasets.models import DatasetVersion, ExportShard, ShardStatus, VersionStatus
from datasets.shards import (
    EXPORT_HELP,
    MANIFEST,
    ShardLost,
    export_shards_sweep,
    shard_claim,
    shard_finish,
    shards_plan,
)
from outbox.models import OutboxMessage
from registry.models import ImagingStudy
from tests.datasets.helpers import make_dataset, run_export


@pytest.fixture
def version(steward, hospital, settings):
    settings.EXPORT_SHARD_STUDIES = 2
    version = DatasetVersion.objects.create(dataset=make_dataset(steward), number=1,
                                            requested_by="stella",
                                            status=VersionStatus.RUNNING)
    with transaction.atomic():
        shards_plan(version=version, study_ids=ImagingStudy.objects.order_by("pk")
                    .values_list("pk", flat=True))
    return version


def finish(shard, worker):
    with transaction.atomic():
        shard_finish(shard=shard, worker=worker)


def test_studies_are_cut_into_shards_and_the_manifest_waits_for_every_one(version):
    shards = ExportShard.objects.filter(version=version).order_by("number")
    assert [(s.number, len(s.study_ids)) for s in shards] == [(0, 0), (1, 2), (2, 2), (3, 1)]
    assert OutboxMessage.objects.filter(kind=EXPORT_HELP).count() == 2  # the planner works too

    claimed = [shard_claim(version_id=version.pk, worker=w) for w in ("a", "b", "a")]
    assert [s.number for s in claimed] == [1, 2, 3]
    assert shard_claim(version_id=version.pk, worker="c") is None  # all held; manifest waits
    finish(claimed[0], "a")
    finish(claimed[2], "a")
    assert shard_claim(version_id=version.pk, worker="a") is None  # b is still writing
    finish(claimed[1], "b")
    manifest = shard_claim(version_id=version.pk, worker="b")
    assert manifest.number == MANIFEST and manifest.claimed_by == "b"
    assert shard_claim(version_id=version.pk, worker="a") is None


def test_a_dead_workers_shard_is_taken_over_and_it_can_record_nothing_after(version):
    lost = shard_claim(version_id=version.pk, worker="dead")
    assert shard_claim(version_id=version.pk, worker="alive").number == 2  # held: skipped
    ExportShard.objects.filter(pk=lost.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1))

    taken = shard_claim(version_id=version.pk, worker="alive")
    assert (taken.pk, taken.attempts, taken.claimed_by) == (lost.pk, 2, "alive")
    study = ImagingStudy.objects.get(pk=lost.study_ids[0])
    batch = FateBatch(version=version, actor=Actor.system("test"), shard=lost, worker="dead")
    batch.pending.append(Fate(study, ConsentDecision(False, "no", ()), included=False,
                              reason="no consent"))
    with pytest.raises(ShardLost):
        batch.flush()
    assert not version.studies.exists()  # the fate went with the lost lease
    with pytest.raises(ShardLost):
        finish(lost, "dead")
    assert ExportShard.objects.get(pk=lost.pk).status == ShardStatus.RUNNING


def test_the_sweeper_wakes_one_worker_per_stalled_version(version):
    OutboxMessage.objects.all().delete()  # the planner's wake-ups went to workers
    for worker in ("a", "b", "c"):
        shard_claim(version_id=version.pk, worker=worker)
    assert export_shards_sweep() == 0  # every shard held, the manifest not yet free
    ExportShard.objects.filter(version=version, number=2).update(
        lease_until=timezone.now() - timedelta(seconds=1))
    assert export_shards_sweep() == 1
    assert export_shards_sweep() == 0  # its wake-up is still waiting for a worker
    message = OutboxMessage.objects.get(kind=EXPORT_HELP)
    assert message.payload == {"version_id": version.pk}


def test_an_export_selecting_nothing_completes_with_an_empty_signed_manifest(
        steward, hospital, django_capture_on_commit_callbacks):
    version = run_export(make_dataset(steward, selection={"date_from": "2099-01-01"}),
                         django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert version.studies_total == version.studies_done == 0
    assert list(ExportShard.objects.filter(version=version).values_list(
        "number", "status")) == [(MANIFEST, ShardStatus.DONE)]


def test_an_export_on_several_shards_is_the_same_as_on_one(
        steward, hospital, settings, django_capture_on_commit_callbacks):
    settings.EXPORT_SHARD_STUDIES = 1
    version = run_export(make_dataset(steward), django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert ExportShard.objects.filter(version=version).count() == 6  # 5 studies + manifest
    assert version.studies_done == version.studies_total == version.studies.count() == 5
    assert version.studies.filter(included=True).count() == 2
