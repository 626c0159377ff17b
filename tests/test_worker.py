"""A real Celery worker process, a real Redis broker, a real database shared with it.

The broker is tests/broker.py's: these tests run in both CI runs, and are skipped only
outside CI with no Redis given."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent, PendingSeal
from outbox.models import MessageStatus, OutboxMessage
from outbox.services import outbox_sweep
from registry.ingest_jobs import INGEST_REQUESTED, ingest_job_queue
from registry.models import IngestJob, IngestStatus, Instance
from tests.broker import REDIS_URL, sending_to

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set WORKER_REDIS_URL or REDIS_URL "
                                             "(always runs in CI)"),
]


def database_url() -> str:
    """The test database, as a URL the worker process can open."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


def spawn_worker(queue: str, tmp_path: Path, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": REDIS_URL, "DATABASE_URL": database_url(),
           "SECRET_KEY": "worker-test-only", "CONSENTRY_DATA_DIR": str(tmp_path / "worker"),
           # The same identifier keys as this process: the worker reads what the test wrote.
           "CONSENTRY_IDENTIFIER_KEYS": ",".join(settings.CONSENTRY_IDENTIFIER_KEYS),
           "CONSENTRY_BLIND_INDEX_KEY": settings.CONSENTRY_BLIND_INDEX_KEY,
           "CELERY_TASK_DEFAULT_QUEUE": queue, **extra_env}
    log = open(tmp_path / "worker.log", "a")  # noqa: SIM115 - the child keeps it
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--queues", queue, "--loglevel=INFO", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def broker_queue(committed_db, tmp_path):
    """A queue of its own on the real Redis; this process sends to it."""
    try:
        with sending_to(REDIS_URL) as queue:
            yield queue
    finally:
        log = tmp_path / "worker.log"
        if log.exists():
            print(log.read_text()[-3000:])  # shown when a test fails


@pytest.fixture
def worker(broker_queue, tmp_path):
    process = spawn_worker(broker_queue, tmp_path)
    yield process
    stop_worker(process)


def wait_for(condition, *, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)  # a finished job is seen at once; the deadline bounds the wait
    raise AssertionError("the worker did not finish in time (see its log above)")


def test_a_real_worker_registers_a_folder_through_redis(worker, corpus, tmp_path):
    folder = tmp_path / "incoming"
    shutil.copytree(corpus / "dicomdirtests" / "98892001", folder)
    (folder / "garbage.dcm").write_bytes(b"not dicom")

    job = ingest_job_queue(paths=[str(folder)], actor=Actor(label="cli:test"))

    wait_for(lambda: IngestJob.objects.get(pk=job.pk).status in (IngestStatus.DONE,
                                                                   IngestStatus.FAILED))
    job.refresh_from_db()
    assert job.status == IngestStatus.DONE, job.summary
    assert job.summary["registered"] == Instance.objects.count() == 7
    assert job.summary["rejected"] == 1
    assert "not a DICOM file" in job.summary["problems"][0]["reason"]
    # The worker marks the message delivered just after the job it ran is done.
    wait_for(lambda: OutboxMessage.objects.get().status == MessageStatus.DELIVERED)
    event = AuditEvent.objects.get(action="dicom.registered")
    assert event.details["source"] == "worker"
    assert event.correlation_id == f"ingest-job-{job.pk}"
    wait_for(lambda: ledger.verify().pending == 0, seconds=30)  # sealed by the worker
    assert ledger.verify().ok


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="worker processes share a PostgreSQL database; the embedded "
                           "SQLite mode has one worker (two would wait on its one writer)")
def test_two_workers_share_the_shards_of_one_ingest_job(broker_queue, corpus, tmp_path,
                                                        settings):
    folder = tmp_path / "incoming"
    shutil.copytree(corpus / "dicomdirtests", folder)
    settings.CONSENTRY_INGEST_SHARD_FILES = 3
    workers = [spawn_worker(broker_queue, tmp_path) for _ in range(2)]
    try:
        job = ingest_job_queue(paths=[str(folder)], actor=Actor(label="cli:test"))
        shards = job.shards.count()
        assert shards >= 4
        wait_for(lambda: IngestJob.objects.get(pk=job.pk).status == IngestStatus.DONE)
    finally:
        for process in workers:
            stop_worker(process)
    job.refresh_from_db()
    # Every file registered once, whichever worker took its shard.
    assert job.summary["registered"] == Instance.objects.count() > 0
    assert job.summary["registered"] + job.summary["known"] + job.summary["conflict"] + \
        job.summary["rejected"] == sum(len(s.files) for s in job.shards.all())
    assert all(s.processed_by for s in job.shards.all())
    assert ledger.verify().ok


def test_writers_leave_sealing_to_one_worker_woken_once_per_window(
        broker_queue, tmp_path, monkeypatch):
    import redis

    monkeypatch.setattr(ledger, "_wake_due", 0.0)  # no wake-up of an earlier test counts
    monkeypatch.setattr(ledger, "SEAL_DEBOUNCE", 5.0)  # all five commits in one window
    for n in range(5):
        ledger.record(action="consent.checked", actor=Actor(label="writer"), details={"n": n})
    # Each committed; the writer sealed none of them and sent one wake-up for all five.
    assert PendingSeal.objects.count() == 5
    assert redis.Redis.from_url(REDIS_URL).llen(broker_queue) == 1

    process = spawn_worker(broker_queue, tmp_path)
    try:
        wait_for(lambda: PendingSeal.objects.count() == 0, seconds=60)
    finally:
        stop_worker(process)
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 5


def test_a_lost_broker_message_is_picked_up_by_the_sweeper(worker, corpus, tmp_path):
    folder = tmp_path / "incoming"
    shutil.copytree(corpus / "dicomdirtests" / "77654033" / "CT2", folder)
    # The job and its message committed, but the wake-up never reached the broker.
    job = IngestJob.objects.create(paths=[str(folder)], requested_by="cli:test")
    message = OutboxMessage.objects.create(kind=INGEST_REQUESTED, payload={"job_id": job.pk})
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=5))
    # A job sent the ordinary way, after it, goes through: the worker is up and reading
    # the queue (one at a time, in order), so only the lost message explains the wait.
    control_folder = tmp_path / "control"
    shutil.copytree(corpus / "dicomdirtests" / "98892001" / "CT2N", control_folder)
    control = ingest_job_queue(paths=[str(control_folder)], actor=Actor(label="cli:test"))
    wait_for(lambda: IngestJob.objects.get(pk=control.pk).status == IngestStatus.DONE)
    assert IngestJob.objects.get(pk=job.pk).status == IngestStatus.QUEUED
    assert OutboxMessage.objects.get(pk=message.pk).status != MessageStatus.DELIVERED
    registered_before = Instance.objects.count()

    assert outbox_sweep() == 1

    wait_for(lambda: IngestJob.objects.get(pk=job.pk).status == IngestStatus.DONE)
    assert Instance.objects.count() - registered_before == 4
    # Marked delivered just after the job is done (a poll can fall between the two).
    wait_for(lambda: OutboxMessage.objects.get(pk=message.pk).status
             == MessageStatus.DELIVERED)


def test_an_export_killed_mid_run_is_never_complete_and_finishes_after_a_restart(
        broker_queue, tmp_path, steward):
    from datetime import date

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from consent.models import ConsentRecord, Purpose
    from consent.selectors import current_form
    from consent.services import consent_record
    from datasets.exports import dataset_create, export_request
    from datasets.fates import BATCH_STUDIES
    from datasets.manifest import verify_manifest
    from datasets.models import DatasetVersion, VersionStatus, VersionStudy
    from datasets.selection import selected_studies
    from datasets.signing import key_id
    from registry.demo import RECIPES, SyntheticPatient, write_study
    from registry.models import Patient
    from registry.registration import dicom_ingest_paths

    actor = Actor(label="stella", role="steward")
    chest = next(r for r in RECIPES if r.description == "CR CHEST PA")
    files = []
    for n in range(40):
        person = SyntheticPatient(f"MRN-{n:03}", f"Person^{n}", date(1960 + n, 1, 1), "F")
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=chest,
                             study_date=date(2025, 1, 1), accession=f"ACC-{n}")
    dicom_ingest_paths(paths=files, actor=actor, source="test")
    ai = Purpose.objects.get(code="ai-training")
    for patient in Patient.objects.all()[:30]:
        consent_record(patient=patient, purpose=ai, decision="permit", actor=actor,
                       source="paper", form=current_form())
    dataset = dataset_create(name="Chest AI", purpose=ai, owner=steward, recipient="Lab",
                             actor=actor, selection={"modality": "CR"})
    exports = tmp_path / "worker" / "exports" / f"dataset-{dataset.pk}"

    # Hold the worker mid-run, deterministically: one consented study near the end of the
    # selection has its stored file replaced by a named pipe. Reading it blocks until a
    # writer sends something; this test opens the writing end and sends nothing, so the
    # worker waits there, with every earlier study's fate recorded, until it is killed.
    order = list(selected_studies(dataset.selection))
    consented = set(ConsentRecord.objects.filter(purpose=ai).values_list("patient_id", flat=True))
    held = [s for s in order if s.patient_id in consented][-3]
    held_position = order.index(held)
    (stored,) = Instance.objects.filter(series__study=held).values_list("path", flat=True)
    stored = Path(stored)
    stored.rename(stored.with_name(stored.name + ".aside"))
    os.mkfifo(stored)

    # Short leases, so the restarted worker may take the job over in seconds, not 30 min;
    # one shard, so this one worker holds the whole job (tests/datasets/test_export_shards.py
    # shares one between two workers).
    leases = {"OUTBOX_LEASE_SECONDS": "2", "EXPORT_SHARD_LEASE_SECONDS": "2",
              "EXPORT_SHARD_STUDIES": "100"}
    first = spawn_worker(broker_queue, tmp_path, **leases)
    version = export_request(dataset=dataset, actor=actor)
    pipe = []

    def worker_is_reading_the_pipe() -> bool:
        try:  # succeeds only once a reader has the pipe open
            pipe.append(os.open(stored, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    try:
        wait_for(worker_is_reading_the_pipe)
        first.send_signal(signal.SIGSTOP)  # freeze it mid-run, then kill it without warning
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        for fd in pipe:
            os.close(fd)
        stored.unlink()
        stored.with_name(stored.name + ".aside").rename(stored)

    version.refresh_from_db()
    assert version.status == VersionStatus.RUNNING
    # None after it; every study before it but those of the batch not written yet (fates
    # are written BATCH_STUDIES at a time, so a kill loses at most one unwritten batch).
    assert held_position - BATCH_STUDIES < version.studies_done <= held_position
    assert not VersionStudy.objects.filter(version=version, study=held).exists()
    assert not (exports / "v1").exists()  # nothing partial in the published place
    assert (exports / "v1.partial").is_dir()

    time.sleep(2.5)  # the dead worker's lease runs out
    second = spawn_worker(broker_queue, tmp_path, **leases)
    try:
        assert outbox_sweep(older_than=timedelta(0)) == 1
        wait_for(lambda: DatasetVersion.objects.get(pk=version.pk).status
                 == VersionStatus.COMPLETE)
    finally:
        stop_worker(second)
    version.refresh_from_db()
    assert version.studies_done == version.studies_total == 40
    fates = VersionStudy.objects.filter(version=version)
    assert fates.count() == 40 and fates.filter(included=True).count() == 30
    decided = AuditEvent.objects.filter(action__in=["export.included", "export.excluded"],
                                        dataset_ref=str(dataset.pk))
    assert decided.count() == 40  # one event per study, none twice after the resume
    # Signed by the worker with its installation's export key (its own data directory).
    worker_key = load_pem_private_key(
        (tmp_path / "worker" / "export-signing-key.pem").read_bytes(), None).public_key()
    assert verify_manifest(exports / "v1", {key_id(worker_key): worker_key}) == []
    assert len(list((exports / "v1").rglob("*.dcm"))) == 30
    assert not (exports / "v1.partial").exists()
