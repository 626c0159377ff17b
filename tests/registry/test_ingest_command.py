"""manage.py ingest_dicom: what an operator sees."""

import shutil

import pytest
from django.core.management import CommandError, call_command

from outbox.models import OutboxMessage
from outbox.services import outbox_deliver
from registry.models import IngestJob, Instance


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("ingest_dicom", *args, stdout=out)
    return out.getvalue()


def test_prints_a_summary_with_each_problem_and_its_reason(db, corpus):
    out = run(str(corpus))
    assert "Registered 108, already known 0, conflicting 24, rejected 44." in out
    assert "MR_truncated.dcm: truncated" in out
    assert "no PatientID" in out
    again = run(str(corpus))
    assert "Registered 0, already known 108, conflicting 24, rejected 44." in again


def test_a_missing_path_is_an_error_and_registers_nothing(db, corpus, tmp_path):
    with pytest.raises(CommandError, match="no such file or folder"):
        run(str(corpus / "CT_small.dcm"), str(tmp_path / "nope"))
    assert Instance.objects.count() == 0


def test_no_path_is_an_error(db):
    with pytest.raises(CommandError, match="at least one file or folder"):
        run()


def test_background_without_a_worker_is_an_error(db, corpus, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    with pytest.raises(CommandError, match="needs a Celery worker"):
        run("--background", str(corpus))
    assert IngestJob.objects.count() == 0


def test_an_unknown_job_is_an_error(db):
    with pytest.raises(CommandError, match="no ingest job 42"):
        run("--job", "42")


def test_a_large_folder_becomes_a_durable_job_that_a_worker_completes(
        db, corpus, tmp_path, settings):
    shutil.copytree(corpus / "dicomdirtests" / "77654033", tmp_path / "big")  # 7 files
    settings.CONSENTRY_INGEST_BACKGROUND_THRESHOLD = 3
    settings.CONSENTRY_INGEST_SHARD_FILES = 3
    settings.CELERY_TASK_ALWAYS_EAGER = False  # the command now believes a worker exists
    out = run(str(tmp_path / "big"))
    job = IngestJob.objects.get()
    assert f"7 files queued as ingest job {job.pk} in 3 shards" in out
    assert Instance.objects.count() == 0
    messages = list(OutboxMessage.objects.filter(kind="dicom.ingest_requested"))
    assert sorted(m.payload["shard"] for m in messages) == [0, 1, 2]
    assert {m.payload["job_id"] for m in messages} == {job.pk}

    # What the workers do with the messages (tests/test_worker.py runs real ones).
    assert outbox_deliver(message_id=messages[0].pk)
    assert "shards done: 1 of 3" in run("--job", str(job.pk))
    for message in messages[1:]:
        assert outbox_deliver(message_id=message.pk)
    job.refresh_from_db()
    assert job.status == "done"
    assert job.summary["registered"] == Instance.objects.count() == 7
    shown = run("--job", str(job.pk))
    assert "shards done: 3 of 3" in shown and "Registered 7, already known 0" in shown


def test_reading_processes_register_the_same_files_in_the_same_order(db, corpus):
    from registry.registration import paths_to_files

    out = run(str(corpus), "--readers", "2")
    assert "Registered 108, already known 0, conflicting 24, rejected 44." in out
    assert "MR_truncated.dcm: truncated" in out
    order = {str(path): n for n, path in enumerate(paths_to_files([corpus]))}
    lines = [line.strip().split(": ", 2) for line in out.splitlines() if line.startswith("  ")]
    for status, count in (("rejected", 44), ("conflict", 24)):
        positions = [order[path] for kind, path, _ in lines if kind == status]
        assert len(positions) == count
        assert positions == sorted(positions)  # as one reader would report them
    assert Instance.objects.count() == 108


@pytest.mark.parametrize("readers", ["0", "-1"])
def test_a_bad_number_of_readers_is_an_error_and_registers_nothing(db, corpus, readers):
    with pytest.raises(CommandError, match="--readers must be 1 or more"):
        run(str(corpus), "--readers", readers)
    assert Instance.objects.count() == 0


def test_readers_that_are_not_a_number_are_an_error(db, corpus):
    with pytest.raises(CommandError, match="invalid int value"):
        run(str(corpus), "--readers", "many")
    assert Instance.objects.count() == 0
