"""A background ingest job cut into shards (registry/ingest_jobs.py): each shard is its own
outbox message that any worker process may take, in any order, more than once."""

import shutil

import pytest

from audit.ledger import Actor
from audit.models import AuditEvent
from outbox.models import OutboxMessage
from outbox.services import outbox_deliver
from registry.ingest_jobs import ingest_job_queue, ingest_shard_run
from registry.models import IngestJob, IngestStatus, Instance
from registry.registration import dicom_ingest_paths, paths_to_files

ACTOR = Actor(label="cli:test")


@pytest.fixture
def folder(corpus, tmp_path):
    """Real DICOM files from pydicom's test set, and two that cannot be registered."""
    target = tmp_path / "incoming"
    shutil.copytree(corpus / "dicomdirtests" / "77654033", target / "a")
    shutil.copytree(corpus / "dicomdirtests" / "98892001", target / "b")
    (target / "garbage.dcm").write_bytes(b"not dicom")
    shutil.copy(corpus / "MR_truncated.dcm", target / "MR_truncated.dcm")
    return target


def messages_of(job: IngestJob) -> list[OutboxMessage]:
    return sorted(OutboxMessage.objects.filter(kind="dicom.ingest_requested",
                                               payload__job_id=job.pk),
                  key=lambda m: m.payload["shard"])


def test_shards_in_any_order_say_what_registering_the_folder_at_once_says(
        db, folder, settings):
    settings.CONSENTRY_INGEST_SHARD_FILES = 4
    every_file = [str(f) for f in sorted(paths_to_files([folder]))]
    job = ingest_job_queue(paths=[str(folder)], actor=ACTOR)
    shards = list(job.shards.all())
    # Every file once, in path order, four to a shard; one message per shard.
    assert [f for shard in shards for f in shard.files] == every_file
    assert [len(s.files) for s in shards[:-1]] == [4] * (len(shards) - 1)
    assert len(shards) == -(-len(every_file) // 4) >= 3
    assert [m.payload["shard"] for m in messages_of(job)] == list(range(len(shards)))

    for message in reversed(messages_of(job)):  # the last shard first
        job.refresh_from_db()
        assert job.status != IngestStatus.DONE  # never before its last shard
        assert outbox_deliver(message_id=message.pk)
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE and job.finished_at is not None
    assert {s.status for s in job.shards.all()} == {IngestStatus.DONE}
    sharded = dict(job.summary)
    registered = set(Instance.objects.values_list("sop_uid", flat=True))

    # The same files registered in one go, on a clean slate, say the same.
    Instance.objects.all().delete()
    at_once = dicom_ingest_paths(paths=[folder], actor=ACTOR, source="cli").as_dict()
    assert set(Instance.objects.values_list("sop_uid", flat=True)) == registered
    for key in ("registered", "known", "conflict", "rejected"):
        assert sharded[key] == at_once[key], key
    assert sharded["registered"] == len(registered) > 0 and sharded["rejected"] == 2
    assert sorted(p["path"] for p in sharded["problems"]) == sorted(
        p["path"] for p in at_once["problems"])


def test_a_shard_run_twice_registers_nothing_twice(db, folder, settings):
    settings.CONSENTRY_INGEST_SHARD_FILES = 5
    job = ingest_job_queue(paths=[str(folder)], actor=ACTOR)
    messages = messages_of(job)
    assert outbox_deliver(message_id=messages[0].pk)
    instances, events = Instance.objects.count(), AuditEvent.objects.count()
    assert instances > 0

    # A redelivered message (a worker that died before acknowledging it) is a no-op.
    ingest_shard_run(job_id=job.pk, number=0)
    assert (Instance.objects.count(), AuditEvent.objects.count()) == (instances, events)
    # So is the same shard's files registered again after its row was reset.
    job.shards.filter(number=0).update(status=IngestStatus.QUEUED)
    ingest_shard_run(job_id=job.pk, number=0)
    assert Instance.objects.count() == instances
    shard = job.shards.get(number=0)
    assert shard.status == IngestStatus.DONE and shard.summary["registered"] == 0
    assert shard.summary["known"] == instances


def test_a_shard_whose_files_vanished_rejects_each_and_still_completes(
        db, folder, settings, tmp_path):
    settings.CONSENTRY_INGEST_SHARD_FILES = 100  # one shard
    job = ingest_job_queue(paths=[str(folder)], actor=ACTOR)
    folder.rename(tmp_path / "moved")  # an unmounted share, say, when the worker gets there
    ingest_shard_run(job_id=job.pk, number=0)
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE
    files = job.shards.get(number=0).files
    assert job.summary["registered"] == 0 and job.summary["rejected"] == len(files)
    assert Instance.objects.count() == 0


def test_a_shard_that_fails_marks_the_job_failed_until_its_retry_succeeds(
        db, folder, settings):
    from io import StringIO

    from django.core.management import call_command

    settings.CONSENTRY_INGEST_SHARD_FILES = 100
    job = ingest_job_queue(paths=[str(folder)], actor=ACTOR)
    files = job.shards.get(number=0).files
    job.shards.filter(number=0).update(files=[42])  # a row no worker can read
    with pytest.raises(TypeError):
        ingest_shard_run(job_id=job.pk, number=0)
    job.refresh_from_db()
    assert job.status == IngestStatus.FAILED
    out = StringIO()
    call_command("ingest_dicom", "--job", str(job.pk), stdout=out)
    assert "shard 0 failed (it is retried): TypeError" in out.getvalue()

    job.shards.filter(number=0).update(files=files)  # as a retry that can read it
    ingest_shard_run(job_id=job.pk, number=0)
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE and job.summary["registered"] > 0


def test_the_job_stays_failed_while_any_shard_is_failed_then_runs_on_to_done(
        db, folder, settings):
    """What `ingest_dicom --job` shows an operator while shards fail and are retried: the
    job is failed as long as one shard is, running again once every failed shard has
    succeeded but others are still to come, done with the last."""
    from io import StringIO

    from django.core.management import call_command

    def shown() -> str:
        out = StringIO()
        call_command("ingest_dicom", "--job", str(job.pk), stdout=out)
        return out.getvalue()

    settings.CONSENTRY_INGEST_SHARD_FILES = 4
    job = ingest_job_queue(paths=[str(folder)], actor=ACTOR)
    files = dict(job.shards.values_list("number", "files"))
    assert len(files) >= 3
    for number in (0, 1):
        job.shards.filter(number=number).update(files=[42])  # a row no worker can read
        with pytest.raises(TypeError):
            ingest_shard_run(job_id=job.pk, number=number)
    assert f"Ingest job {job.pk}: failed" in shown()

    job.shards.filter(number=0).update(files=files[0])  # shard 0's retry can read it
    ingest_shard_run(job_id=job.pk, number=0)
    report = shown()
    assert f"Ingest job {job.pk}: failed" in report  # shard 1 still failed
    assert "shard 1 failed (it is retried): TypeError" in report
    assert "shard 0 failed" not in report

    job.shards.filter(number=1).update(files=files[1])
    ingest_shard_run(job_id=job.pk, number=1)
    report = shown()
    assert f"Ingest job {job.pk}: running" in report  # no shard failed; the rest to come
    assert "failed" not in report and "shards done: 2 of" in report

    for number in sorted(files)[2:]:
        ingest_shard_run(job_id=job.pk, number=number)
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE
    assert job.summary["registered"] == Instance.objects.count() > 0
    assert job.summary["rejected"] == 2


def test_an_empty_folder_is_a_job_done_at_once(db, tmp_path):
    (tmp_path / "empty").mkdir()
    job = ingest_job_queue(paths=[str(tmp_path / "empty")], actor=ACTOR)
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE and job.summary["registered"] == 0
    assert not job.shards.exists() and not messages_of(job)


def test_a_message_from_before_shards_registers_the_whole_job(db, folder):
    from registry.ingest_jobs import ingest_message_run

    job = IngestJob.objects.create(paths=[str(folder)], requested_by="cli:test")
    ingest_message_run({"job_id": job.pk})
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE
    assert job.summary["registered"] == Instance.objects.count() > 0

    # Delivered again (the worker died before acknowledging it): not walked again.
    finished, events = job.finished_at, AuditEvent.objects.count()
    ingest_message_run({"job_id": job.pk})
    job.refresh_from_db()
    assert (job.status, job.finished_at, AuditEvent.objects.count()) == (
        IngestStatus.DONE, finished, events)
    assert job.summary["registered"] == Instance.objects.count()  # not "known" on a rerun


def test_a_job_from_before_shards_that_fails_says_why_and_its_retry_completes(db, folder):
    from io import StringIO

    from django.core.management import call_command

    from registry.ingest_jobs import ingest_message_run

    job = IngestJob.objects.create(paths=[42], requested_by="cli:test")  # unreadable row
    with pytest.raises(TypeError):  # raised, so the outbox retries the message
        ingest_message_run({"job_id": job.pk})
    job.refresh_from_db()
    assert job.status == IngestStatus.FAILED and Instance.objects.count() == 0
    out = StringIO()
    call_command("ingest_dicom", "--job", str(job.pk), stdout=out)
    assert f"Ingest job {job.pk}: failed" in out.getvalue()
    assert "failed: TypeError" in out.getvalue()

    IngestJob.objects.filter(pk=job.pk).update(paths=[str(folder)])  # the retry reads it
    ingest_message_run({"job_id": job.pk})
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE
    assert job.summary["registered"] == Instance.objects.count() > 0
