"""One export shared by two real worker processes (Redis, PostgreSQL, SKIP LOCKED): one is
killed (SIGKILL) while it holds a shard; the other takes that shard over once its lease runs
out, and the version holds every study exactly once under one manifest that verifies."""

import signal
import time
from datetime import date

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.db import connection

from audit.ledger import Actor
from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.exports import dataset_create, export_request
from datasets.manifest import verify_manifest
from datasets.models import DatasetVersion, ExportShard, ShardStatus, VersionStatus
from datasets.shards import MANIFEST, export_shards_sweep
from datasets.signing import key_id
from registry.demo import RECIPES, SyntheticPatient, write_study
from registry.models import Patient
from registry.registration import dicom_ingest_paths
from tests.test_worker import (  # noqa: F401 - broker_queue is a fixture
    REDIS_URL,
    broker_queue,
    spawn_worker,
    stop_worker,
    wait_for,
)

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL (always runs in CI)"),
]

STUDIES = 60
CONSENTED = 40
LEASE = 6  # seconds: short, so the takeover comes soon; renewed every 2 s by its holder


def held_by(process, version):
    """The study shard ``process`` holds now, if any."""
    return ExportShard.objects.filter(version=version, status=ShardStatus.RUNNING,
                                      number__gt=MANIFEST,
                                      claimed_by__endswith=f":{process.pid}").first()


def claimed_anything(process, version) -> bool:
    return ExportShard.objects.filter(version=version,
                                      claimed_by__endswith=f":{process.pid}").exists()


def test_two_workers_share_one_export_and_a_killed_ones_shard_is_taken_over(
        broker_queue, tmp_path, steward):  # noqa: F811 - the fixture, first: real commits
    if connection.vendor != "postgresql":
        pytest.skip("two workers writing at once: PostgreSQL's row locks, not SQLite's one")
    actor = Actor(label="stella", role="steward")
    chest = next(r for r in RECIPES if r.description == "CR CHEST PA")
    files = []
    for n in range(STUDIES):
        person = SyntheticPatient(f"MRN-{n:03}", f"Person^{n}", date(1950 + n % 60, 1, 1),
                                  "F")
        files += write_study(out_dir=tmp_path / "in", patient=person, recipe=chest,
                             study_date=date(2025, 1, 1), accession=f"ACC-{n}")
    dicom_ingest_paths(paths=files, actor=actor, source="test")
    ai = Purpose.objects.get(code="ai-training")
    for patient in Patient.objects.order_by("pk")[:CONSENTED]:
        consent_record(patient=patient, purpose=ai, decision="permit", actor=actor,
                       source="paper", form=current_form())
    dataset = dataset_create(name="Chest AI", purpose=ai, owner=steward, recipient="Lab",
                             actor=actor, selection={"modality": "CR"})
    # Both workers mount the same export directory (tmp_path / "worker"): shared storage.
    shards = {"EXPORT_SHARD_STUDIES": "2", "EXPORT_SHARD_LEASE_SECONDS": str(LEASE)}
    first = spawn_worker(broker_queue, tmp_path, **shards)
    second = spawn_worker(broker_queue, tmp_path, **shards)
    workers = [first, second]
    try:
        version = export_request(dataset=dataset, actor=actor)
        # Both at work on the same version at once.
        wait_for(lambda: all(claimed_anything(w, version) for w in workers))
        # The kill point, made deterministic: freeze a worker, and kill it only if the
        # database says it holds a study shard at that moment.
        victim = taken = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline:
            for process in workers:
                process.send_signal(signal.SIGSTOP)
                taken = held_by(process, version)
                if taken is not None:
                    victim = process
                    break
                process.send_signal(signal.SIGCONT)
            time.sleep(0.02)
        assert victim is not None, "no worker was caught holding a shard"
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        survivor = second if victim is first else first
        assert DatasetVersion.objects.get(pk=version.pk).status == VersionStatus.RUNNING

        def complete() -> bool:
            export_shards_sweep()  # what beat runs every minute
            return DatasetVersion.objects.get(pk=version.pk).status == VersionStatus.COMPLETE

        wait_for(complete, seconds=120)
    finally:
        for process in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                stop_worker(process)

    version.refresh_from_db()
    assert version.studies_done == version.studies_total == STUDIES
    taken.refresh_from_db()
    assert taken.status == ShardStatus.DONE and taken.attempts >= 2
    assert taken.claimed_by.endswith(f":{survivor.pid}")  # taken over by the survivor
    assert not ExportShard.objects.filter(version=version).exclude(
        status=ShardStatus.DONE).exists()
    # Every study exactly once: one fate, one ledger event.
    fates = version.studies.all()
    assert fates.count() == len({f.study_id for f in fates}) == STUDIES
    assert fates.filter(included=True).count() == CONSENTED
    decided = AuditEvent.objects.filter(action__in=["export.included", "export.excluded"],
                                        dataset_ref=str(dataset.pk))
    assert decided.count() == len(set(decided.values_list("study_uid", flat=True))) == STUDIES
    assert AuditEvent.objects.filter(action="export.delivered").count() == 1
    # One manifest, signed with the workers' export key, over exactly the included files.
    # (Where the workers' settings put it: their data directory, not this process's.)
    exports = tmp_path / "worker" / "exports" / f"dataset-{dataset.pk}" / "v1"
    key = load_pem_private_key((tmp_path / "worker" / "export-signing-key.pem").read_bytes(),
                               None).public_key()
    assert verify_manifest(exports, {key_id(key): key}) == []
    assert len(list(exports.rglob("*.dcm"))) == CONSENTED
    assert not exports.with_name("v1.partial").exists()
