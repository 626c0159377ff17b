"""Honest answers after a commit: with the broker down, a saved change is reported as saved,
and the sweeper delivers its work once the broker is back.

A Redis server of this test's own (never the shared one) is started on a free port, Celery
is pointed at it, and it is stopped before the requests; then it is started again on the
same port, a real worker is spawned, and the sweeper hands over what was left."""

import shutil
import socket
import subprocess
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.test import Client

from audit.ledger import Actor
from audit.models import AuditEvent
from config.celery import app
from consent.models import ConsentRecord, Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.exports import dataset_create
from datasets.models import DatasetVersion, VersionStatus
from outbox.models import MessageStatus, OutboxMessage
from outbox.services import outbox_sweep
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.models import Patient
from registry.registration import dicom_ingest_paths
from tests.broker import forget_broker_connections
from tests.clients import api_with_token, sign_in
from tests.conftest import make_user
from tests.test_worker import spawn_worker, stop_worker, wait_for

REDIS_SERVER = shutil.which("redis-server")
pytestmark = [pytest.mark.worker,
              pytest.mark.skipif(not REDIS_SERVER, reason="needs redis-server")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OwnRedis:
    """A throwaway redis-server: no persistence, its own port, started and stopped here."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.workdir.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.answers, seconds=20)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)
            self.process = None


@pytest.fixture
def own_redis(committed_db, tmp_path):
    """Celery's broker is this test's own Redis, and tasks really go through it."""
    redis = OwnRedis(tmp_path / "redis")
    redis.start()
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=redis.url, task_always_eager=False,
                    task_default_queue="consentry-outage-test")
    forget_broker_connections()
    try:
        yield redis
    finally:
        redis.stop()
        app.conf.update(saved)
        forget_broker_connections()
        log = tmp_path / "worker.log"
        if log.exists():
            print(log.read_text()[-3000:])


def browser(user) -> Client:
    # A real answer, as a user would get it: a 500 page rather than an exception in the test.
    client = Client(raise_request_exception=False)
    return sign_in(client, user)


def test_saved_changes_are_reported_as_saved_while_the_broker_is_down(own_redis, tmp_path):
    actor = Actor(label="setup")
    ai = Purpose.objects.get(code="ai-training")
    chest = next(r for r in RECIPES if r.description == "CR CHEST PA")
    files = []
    for n in range(3):
        person = SyntheticPatient(f"MRN-{n}", f"Person^{n}", date(1970 + n, 1, 1), "F")
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=chest,
                             study_date=date(2025, 1, 1), accession=f"ACC-{n}")
    dicom_ingest_paths(paths=files, actor=actor, source="test")
    first, second, third = sorted(Patient.objects.all(), key=lambda p: p.mrn)
    first.user = make_user("pat", "patient")
    first.save()
    for patient in (first, second, third):
        consent_record(patient=patient, purpose=ai, decision="permit", actor=actor,
                       source="paper", form=current_form())
    staff = make_user("sam", "staff")
    steward = make_user("stella", "steward")
    dataset = dataset_create(name="Chest AI", purpose=ai, owner=steward, recipient="Lab",
                             actor=actor, selection={"modality": "CR"})
    OutboxMessage.objects.all().delete()  # the set-up's own wake-ups went through

    own_redis.stop()  # the broker is gone from here on

    as_patient = browser(first.user)
    portal = as_patient.post(f"/portal/{first.pk}/choices/change/", {
        "purpose": "ai-training", "decision": "deny", "scope_kind": "all", "scope_value": "",
        "confirmed": "yes"})
    assert portal.status_code == 302, portal.content[:300]
    page = as_patient.get(portal.headers["Location"]).content.decode()
    assert "Saved: “No”" in page and "may take a few minutes" in page
    assert "nothing was changed" not in page.lower()

    as_staff = browser(staff)
    desk = as_staff.post(f"/desk/patients/{second.pk}/consent/", {
        "purpose": "ai-training", "decision": "deny", "scope_kind": "all", "scope_value": "",
        "source": "paper", "form_version": str(current_form().pk), "witness": "", "proxy_name": "",
        "proxy_relationship": ""})
    assert desk.status_code == 302, desk.content[:300]
    assert "Consent recorded" in as_staff.get(desk.headers["Location"]).content.decode()

    api = api_with_token(staff, "consent:write")
    api.raise_request_exception = False
    withdrawn = api.post("/api/v1/consents/withdraw",
                         {"patient": third.pk, "purpose": "ai-training"}, format="json")
    assert withdrawn.status_code == 201, withdrawn.content[:300]

    run = browser(steward).post(f"/datasets/{dataset.pk}/run/")
    assert run.status_code == 302, run.content[:300]

    # Everything the answers promised is in the database: records, events, messages.
    denies = ConsentRecord.objects.filter(decision="deny")
    assert {r.patient_id for r in denies} == {first.pk, second.pk, third.pk}
    assert AuditEvent.objects.filter(action="consent.withdrawn").count() == 3
    assert AuditEvent.objects.filter(action="dataset.export_requested").count() == 1
    version = DatasetVersion.objects.get(dataset=dataset)
    assert version.status == VersionStatus.QUEUED
    pending = OutboxMessage.objects.filter(status=MessageStatus.PENDING)
    assert sorted(pending.values_list("kind", flat=True)) == [
        "consent.changed", "consent.changed", "consent.changed", "datasets.export_requested"]

    # The broker comes back; the sweeper hands the waiting work to a worker.
    own_redis.start()
    forget_broker_connections()
    worker = spawn_worker("consentry-outage-test", tmp_path, REDIS_URL=own_redis.url)
    try:
        assert outbox_sweep(older_than=timedelta(0)) == 4
        wait_for(lambda: not OutboxMessage.objects.filter(
            status=MessageStatus.PENDING).exists())
    finally:
        stop_worker(worker)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {
        MessageStatus.DELIVERED}
    version.refresh_from_db()
    assert version.status == VersionStatus.COMPLETE
    # All three withdrew before the export ran: nobody's study went out.
    assert version.studies.filter(included=True).count() == 0
