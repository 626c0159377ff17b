"""An export interrupted part-way, in this process on either database: a file that changes
under it, consent that cannot be read at the re-check, a worker whose shard (or the
manifest) is taken over by another, the files such a worker writes late. Each time: what
was recorded stands, nothing is recorded that was not written, nothing is published that
was not recorded as included, and the next run publishes the version whole, each study
decided once."""

import hashlib
import shutil
from datetime import timedelta
from pathlib import Path

from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets import exports
from datasets.deid import DeidContext
from datasets.exports import export_run, version_dir
from datasets.manifest import MANIFEST_JSON, verify_manifest
from datasets.models import DatasetVersion, ExportShard, VersionStatus, VersionStudy
from datasets.shards import MANIFEST, shard_claim
from datasets.signing import published_keys
from outbox.models import OutboxMessage
from outbox.services import outbox_deliver
from registry.models import ImagingStudy, Instance
from tests.datasets.helpers import STEWARD, fates, make_dataset, run_export

ELSEWHERE = "elsewhere:1"  # another worker process, as far as the shards can tell


def decided(version) -> list[int]:
    return sorted(VersionStudy.objects.filter(version=version).values_list("study_id",
                                                                          flat=True))


def assert_published_whole(version) -> None:
    """Complete, every selected study decided once (one fate, one ledger event), one
    delivery, and a signed manifest over exactly the published files."""
    version.refresh_from_db()
    assert version.status == VersionStatus.COMPLETE
    assert decided(version) == sorted(ImagingStudy.objects.values_list("pk", flat=True))
    events = AuditEvent.objects.filter(action__in=["export.included", "export.excluded"],
                                       dataset_ref=str(version.dataset_id))
    assert events.count() == len(decided(version))
    assert AuditEvent.objects.filter(action="export.delivered",
                                     dataset_ref=str(version.dataset_id)).count() == 1
    assert verify_manifest(version_dir(version), published_keys()) == []
    assert not version_dir(version, staging=True).exists()



def publish_then_lose_the_manifest_shard(version, monkeypatch) -> None:
    """The next run's publisher writes the manifest, then pauses past its lease while another
    worker takes the manifest shard over: it renames the version into place but its commit
    is no longer its own."""
    real = exports.write_manifest

    def write_while_taken_over(directory, provenance):
        sha = real(directory, provenance)
        ExportShard.objects.filter(version=version, number=MANIFEST).update(
            lease_until=timezone.now())  # this worker paused past its lease
        assert shard_claim(version_id=version.pk, worker=ELSEWHERE).number == MANIFEST
        return sha

    monkeypatch.setattr(exports, "write_manifest", write_while_taken_over)

def test_a_file_that_vanishes_between_the_check_and_the_write_leaves_its_study_out_whole(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    """The knee's second file is read and checked, then removed before the batch is
    written: the study is left out with the reason, and its first file (already written)
    does not reach the published version."""
    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")
    files = list(Instance.objects.filter(series__study=knee).order_by("pk"))
    assert len(files) == 2
    real = exports.unsafe_reason

    def check_then_lose_a_file(study, burned_in, **kwargs):
        if study == knee:  # read and found safe; gone before it is written
            Path(files[-1].path).unlink()
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", check_then_lose_a_file)
    dataset = make_dataset(steward)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    assert fates(version)["MR KNEE LEFT"] == (
        False, "files missing or unreadable since registration (FileNotFoundError)")
    context = DeidContext(secret=bytes.fromhex(dataset.secret))
    assert not (version_dir(version) / context.remap_uid(knee.study_uid)).exists()
    assert version.studies.filter(included=True).count() == 1  # Ann's chest
    assert_published_whole(version)


def test_consent_unreadable_at_the_re_check_fails_the_attempt_and_the_retry_exports(
        committed_db, steward, hospital, data_dir, monkeypatch):
    """Consent cannot be read when the batch is re-checked (here its table is out of
    reach, as a database fault would make it): nothing of the batch is written or recorded
    as withdrawn, the studies left out before the first one held for writing keep their
    fates, the version says it will retry, and the retry exports the rest."""
    ai = Purpose.objects.get(code="ai-training")
    chest = ImagingStudy.objects.get(description="CR CHEST PA", patient=hospital["ann"])
    consent_record(patient=hospital["ann"], purpose=ai, decision="deny", actor=STEWARD,
                   source="portal", form=current_form(), scope_kind="study",
                   scope_value=chest.study_uid)  # Ann's first study: left out at once
    table = "consent_consentrecord"
    real = exports.unsafe_reason

    def check_then_lose_consent(study, burned_in, **kwargs):
        if study.description == "US ABDOMEN":  # the batch's last study to be checked
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", check_then_lose_consent)
    try:
        # The job runs when its request commits (here at once: real commits).
        version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    finally:
        if table + "_away" in connection.introspection.table_names():
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")
    monkeypatch.undo()
    version.refresh_from_db()
    assert version.status == VersionStatus.RUNNING
    assert version.error.startswith("will retry after: ConsentUnavailable")
    assert fates(version) == {"CR CHEST PA": (False, "consent refused or withdrawn")}
    assert not list(version_dir(version, staging=True).rglob("*.dcm"))  # nothing written

    message = OutboxMessage.objects.get(kind=exports.EXPORT_REQUESTED)
    OutboxMessage.objects.filter(pk=message.pk).update(lease_until=None)  # its retry, now
    assert outbox_deliver(message_id=message.pk)
    version.refresh_from_db()
    assert fates(version)["MR KNEE LEFT"][0] is True
    assert not VersionStudy.objects.filter(version=version,
                                           reason__contains="withdrawn during").exists()
    assert_published_whole(version)


def test_a_worker_whose_shard_is_taken_over_records_nothing_more_of_it_and_goes_on(
        steward, hospital, data_dir, settings, django_capture_on_commit_callbacks,
        monkeypatch):
    """Studies slow enough to outlast a third of the lease are written a batch of one at a
    time, each batch's fates committed with the claim's renewal (so the progress shown
    moves as they go). When another worker takes the shard over (the lease ran out), this
    one loses only the batch it was writing and goes on with the other shards; the shard
    is finished by whoever holds it next."""
    settings.EXPORT_SHARD_STUDIES = 3  # [Ann's chest, knee, head], [abdomen, Ben's chest]
    settings.EXPORT_SHARD_LEASE_SECONDS = 0.0003  # every study outlasts a third of it
    with django_capture_on_commit_callbacks(execute=False):  # run by hand below
        version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")
    seen = {}
    real = exports.unsafe_reason

    def check_while_taken_over(study, burned_in, **kwargs):
        if study == knee:
            # Its shard's first study is recorded already, in a batch of its own.
            seen["done"] = DatasetVersion.objects.get(pk=version.pk).studies_done
            ExportShard.objects.filter(version=version, number=1).update(
                lease_until=timezone.now())  # run out, however fast this machine is
            taken = shard_claim(version_id=version.pk, worker=ELSEWHERE)
            seen["taken"] = taken.number
            ExportShard.objects.filter(pk=taken.pk).update(  # its holder renews it
                lease_until=timezone.now() + timedelta(hours=1))
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", check_while_taken_over)
    first = export_run(version_id=version.pk)
    monkeypatch.undo()
    assert seen == {"done": 1, "taken": 1}
    assert first.status == VersionStatus.RUNNING  # the manifest waits for shard 1
    # The knee written, then lost with its shard (unrecorded); the head left to the holder.
    assert {s.description for s in ImagingStudy.objects.filter(pk__in=decided(version))} == {
        "CR CHEST PA", "US ABDOMEN"}
    assert len(decided(version)) == 3  # both chests and the abdomen

    # The other worker dies in turn; its lease runs out and this one finishes the shard.
    ExportShard.objects.filter(version=version, number=1).update(lease_until=timezone.now())
    export_run(version_id=version.pk)
    assert fates(version)["MR KNEE LEFT"][0] is True
    assert_published_whole(version)


def test_a_publisher_whose_manifest_shard_is_taken_over_after_publishing_is_not_redone(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    """The worker writing the manifest outlasts its lease; another takes the manifest shard
    over, after this one has already renamed the version into place. That one (or whoever
    comes next) finds the published directory whole and completes the version with it: the
    files and the manifest are not rewritten, and the delivery is recorded once."""
    with django_capture_on_commit_callbacks(execute=False):  # run by hand below
        version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    publish_then_lose_the_manifest_shard(version, monkeypatch)
    first = export_run(version_id=version.pk)
    monkeypatch.undo()
    assert first.status == VersionStatus.RUNNING  # published, but not this worker's commit
    published = {p: p.read_bytes() for p in version_dir(version).rglob("*") if p.is_file()}
    assert version_dir(version) / MANIFEST_JSON in published
    assert not AuditEvent.objects.filter(action="export.delivered").exists()

    # The other worker dies before finishing; the next run completes the version.
    ExportShard.objects.filter(version=version, number=MANIFEST).update(
        lease_until=timezone.now())
    again = export_run(version_id=version.pk)
    assert {p: p.read_bytes() for p in version_dir(version).rglob("*")
            if p.is_file()} == published
    assert again.manifest_sha256 == hashlib.sha256(
        published[version_dir(version) / MANIFEST_JSON]).hexdigest()
    assert_published_whole(version)


def test_a_late_writers_leftovers_never_replace_a_published_version(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    """Reproduction: the publisher renamed the version into place and lost the manifest
    shard before its commit (as above); meanwhile a worker that had lost a study shard
    wrote its batch late, into a new staging directory. The next publisher took that
    staging directory for the version: it deleted the whole published one and published
    the late writer's one study under a freshly signed manifest."""
    with django_capture_on_commit_callbacks(execute=False):  # run by hand below
        version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    publish_then_lose_the_manifest_shard(version, monkeypatch)
    export_run(version_id=version.pk)
    monkeypatch.undo()
    final, staging = version_dir(version), version_dir(version, staging=True)
    published = {p: p.read_bytes() for p in final.rglob("*") if p.is_file()}
    # The late writer's files: one study, written again (the same files a writer makes).
    late = next(p for p in final.iterdir() if p.is_dir())
    shutil.copytree(late, staging / late.name)

    ExportShard.objects.filter(version=version, number=MANIFEST).update(
        lease_until=timezone.now())  # the other publisher died too
    export_run(version_id=version.pk)
    assert {p: p.read_bytes() for p in final.rglob("*") if p.is_file()} == published
    assert_published_whole(version)  # and the leftovers are gone


def test_a_shard_whose_studies_were_all_recorded_but_not_finished_is_finished_as_it_is(
        steward, hospital, data_dir, settings, django_capture_on_commit_callbacks):
    """A worker of the release before a shard's last fates committed with its finish, killed
    between the two, left such a shard (no run of this release can: the two commit
    together). The next worker finishes it without deciding again (deciding no study at
    all failed and left the version stuck), and the version completes, each study once."""
    from audit.ledger import Actor
    from consent.engine import decide_many
    from datasets.fates import Fate, FateBatch
    from datasets.models import ShardStatus

    settings.EXPORT_SHARD_STUDIES = 1
    with django_capture_on_commit_callbacks(execute=False):  # run by hand below
        version = exports.export_request(dataset=make_dataset(steward), actor=STEWARD)
    assert exports._plan(version, Actor.system("planner")) is False
    ben = ImagingStudy.objects.get(patient=hospital["ben"])
    shard = next(s for s in ExportShard.objects.filter(version=version)
                 if s.study_ids == [ben.pk])
    # The old worker: it held the shard and recorded Ben's fate, then was killed.
    ExportShard.objects.filter(pk=shard.pk).update(
        status=ShardStatus.RUNNING, claimed_by=ELSEWHERE,
        lease_until=timezone.now() + timedelta(hours=1))
    decision = decide_many(ImagingStudy.objects.filter(pk=ben.pk), version.dataset.purpose,
                           timezone.now())[ben.pk]
    FateBatch(version=version, actor=Actor.system("old worker"), shard=shard,
              worker=ELSEWHERE, pending=[Fate(ben, decision, included=False,
                                              reason="no consent (default policy)")]).flush()
    ExportShard.objects.filter(pk=shard.pk).update(lease_until=timezone.now())  # ran out

    export_run(version_id=version.pk)
    shard.refresh_from_db()
    assert shard.status == ShardStatus.DONE
    assert VersionStudy.objects.get(version=version, study=ben).reason == (
        "no consent (default policy)")
    assert_published_whole(version)


def test_a_late_writers_files_of_a_study_left_out_are_never_published(
        steward, hospital, data_dir, django_capture_on_commit_callbacks, monkeypatch):
    """Reproduction: a worker re-checked the knee (allowed), wrote nothing yet and paused
    past its lease; another worker took the shard over, Ann withdrew the knee, and that
    worker's re-check kept it out. Then the first woke and wrote the knee's files into the
    staging directory before finding its shard lost. The manifest, taken over every file
    in the directory, listed and published them, a withdrawn study's images, signed, while
    the version's record said the study was left out."""
    from datasets.deid import ConsentStamp
    from datasets.deid_write import write_deidentified

    knee = ImagingStudy.objects.get(description="MR KNEE LEFT")
    consent_record(patient=knee.patient, purpose=Purpose.objects.get(code="ai-training"),
                   decision="deny", actor=STEWARD, source="portal", form=current_form(),
                   scope_kind="study", scope_value=knee.study_uid)
    dataset = make_dataset(steward)
    context = DeidContext(secret=bytes.fromhex(dataset.secret),
                          options=frozenset(dataset.deid_options))
    real = exports.unsafe_reason

    def check_while_a_late_writer_writes(study, burned_in, **kwargs):
        if study.description == "US ABDOMEN":  # the knee was decided before it
            version = DatasetVersion.objects.get(dataset=dataset)
            for instance in Instance.objects.filter(series__study=knee):
                write_deidentified(instance.path, version_dir(version, staging=True),
                                   context, consent=ConsentStamp("YES"))
        return real(study, burned_in, **kwargs)

    monkeypatch.setattr(exports, "unsafe_reason", check_while_a_late_writer_writes)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert fates(version)["MR KNEE LEFT"] == (False, "consent refused or withdrawn")
    assert not (version_dir(version) / context.remap_uid(knee.study_uid)).exists()
    included = set(version.studies.filter(included=True).values_list("pseudo_study_uid",
                                                                     flat=True))
    assert {p.relative_to(version_dir(version)).parts[0]
            for p in version_dir(version).rglob("*.dcm")} == included
    assert_published_whole(version)
