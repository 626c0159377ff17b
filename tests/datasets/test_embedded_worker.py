"""The embedded mode with a worker beside it (what `make demo` runs): the web side,
started with CONSENTRY_TASKS_INLINE=false, leaves an export queued in the outbox and
answers at once, so its page can show progress; `manage.py embedded_worker`, a second real
process on the same database, runs it to the end and seals the ledger."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from audit.models import PendingSeal
from datasets.models import DatasetVersion, VersionStatus
from outbox.models import MessageStatus, OutboxMessage
from registry.models import ImagingStudy
from tests.consent.factories import make_patient, make_study
from tests.datasets.helpers import make_dataset

ROOT = Path(__file__).resolve().parent.parent.parent


def manage(*args: str, inline: bool = True) -> subprocess.CompletedProcess:
    """A second real process on the test database (committed, so it sees the data)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    else:
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        url = (f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
               f"{db['PORT'] or 5432}/{db['NAME']}")
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": "embedded-worker-test-only",
           "CONSENTRY_DATA_DIR": str(settings.DATA_DIR),
           "CONSENTRY_IDENTIFIER_KEYS": ",".join(settings.CONSENTRY_IDENTIFIER_KEYS),
           "CONSENTRY_BLIND_INDEX_KEY": settings.CONSENTRY_BLIND_INDEX_KEY,
           "CONSENTRY_TASKS_INLINE": "true" if inline else "false"}
    env.pop("REDIS_URL", None)  # the embedded mode: no broker
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def cohort(committed_db, steward):
    patients = [make_patient(f"MRN-W{n}") for n in range(3)]
    for patient in patients:
        study = make_study(patient, ("CT", "CHEST"))
        ImagingStudy.objects.filter(pk=study.pk).update(study_date="2025-06-01")
    return make_dataset(steward, name="Worker cohort")


REQUEST = ("from datasets.models import Dataset; from datasets.exports import export_request; "
           "from audit.ledger import Actor; "
           "v = export_request(dataset=Dataset.objects.get(name='Worker cohort'), "
           "actor=Actor(label='stella', role='steward')); print(v.pk)")


def test_the_web_side_leaves_the_export_to_the_worker_which_finishes_it(cohort):
    requested = manage("shell", "-c", REQUEST, inline=False)
    assert requested.returncode == 0, requested.stderr
    version = DatasetVersion.objects.get(pk=int(requested.stdout.split()[-1]))
    # Answered without running it: the page can now show it queued, then its progress.
    assert version.status == VersionStatus.QUEUED
    assert OutboxMessage.objects.filter(status=MessageStatus.PENDING).exists()

    worked = manage("embedded_worker", "--once")
    assert worked.returncode == 0, worked.stderr
    version.refresh_from_db()
    assert version.status == VersionStatus.COMPLETE
    assert version.studies.count() == 3  # every selected study decided
    assert not OutboxMessage.objects.filter(status=MessageStatus.PENDING).exists()
    assert not PendingSeal.objects.exists()  # the worker sealed what it wrote


def test_inline_remains_the_default(cohort):
    requested = manage("shell", "-c", REQUEST)
    assert requested.returncode == 0, requested.stderr
    version = DatasetVersion.objects.get(pk=int(requested.stdout.split()[-1]))
    assert version.status == VersionStatus.COMPLETE


@pytest.mark.parametrize(("args", "error"), [
    (["--every", "0"], "--every must be between 0.05 and 60 seconds"),
    (["--every", "soon"], "invalid float value"),
])
def test_a_bad_pace_is_refused_plainly(cohort, args, error):
    worked = manage("embedded_worker", "--once", *args)
    assert worked.returncode != 0 and error in worked.stderr
