"""A real Celery worker process, a real Redis broker, a real database shared with it.

Skipped only when no Redis is configured outside CI; in CI (CI=true) it always runs and
uses the local Redis when REDIS_URL is not set."""

import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent
from config.celery import app
from consent.models import IngestJob, IngestStatus, Instance
from consent.registration import INGEST_REQUESTED, ingest_job_queue
from outbox.models import MessageStatus, OutboxMessage
from outbox.services import outbox_sweep

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL") or (
    "redis://127.0.0.1:6379/15" if os.environ.get("CI") else "")

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL (always runs in CI)"),
]


def database_url() -> str:
    """The test database, as a URL the worker process can open."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


@pytest.fixture
def worker(committed_db, tmp_path):
    queue = f"consentry-test-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "REDIS_URL": REDIS_URL, "DATABASE_URL": database_url(),
           "SECRET_KEY": "worker-test-only", "CONSENTRY_DATA_DIR": str(tmp_path / "worker"),
           "CELERY_TASK_DEFAULT_QUEUE": queue}
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--queues", queue, "--loglevel=INFO", "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=REDIS_URL, task_always_eager=False, task_default_queue=queue)
    forget_broker_connections()
    try:
        yield process
    finally:
        app.conf.update(saved)
        forget_broker_connections()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        print((tmp_path / "worker.log").read_text()[-3000:])  # shown when a test fails


def forget_broker_connections() -> None:
    """Celery caches the broker connection pool and the queue routing it built from the
    configuration it first saw; drop both so the new broker and queue take effect."""
    app._pool = None
    app.__dict__.pop("amqp", None)


def wait_for(condition, *, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
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
    assert OutboxMessage.objects.get().status == MessageStatus.DELIVERED
    event = AuditEvent.objects.get(action="dicom.registered")
    assert event.details["source"] == "worker"
    assert event.correlation_id == f"ingest-job-{job.pk}"
    wait_for(lambda: ledger.verify().pending == 0, seconds=30)  # sealed by the worker
    assert ledger.verify().ok


def test_a_lost_broker_message_is_picked_up_by_the_sweeper(worker, corpus, tmp_path):
    folder = tmp_path / "incoming"
    shutil.copytree(corpus / "dicomdirtests" / "77654033" / "CT2", folder)
    # The job and its message committed, but the wake-up never reached the broker.
    job = IngestJob.objects.create(paths=[str(folder)], requested_by="cli:test")
    message = OutboxMessage.objects.create(kind=INGEST_REQUESTED, payload={"job_id": job.pk})
    OutboxMessage.objects.filter(pk=message.pk).update(
        created_at=timezone.now() - timedelta(minutes=5))
    time.sleep(1)
    assert IngestJob.objects.get(pk=job.pk).status == IngestStatus.QUEUED

    assert outbox_sweep() == 1

    wait_for(lambda: IngestJob.objects.get(pk=job.pk).status == IngestStatus.DONE)
    assert Instance.objects.count() == 4
