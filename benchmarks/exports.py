"""De-identified export rate against a plain file copy of the same files.

DESIGN.md: a de-identified export must reach at least 30% of a plain copy's rate. The export
does far more than copy: it decides consent for the whole selection, reads each study's
headers for safety, re-checks consent, de-identifies every instance (PS3.15 table, UID
HMACs, date shift), writes it, records one ledger event per study, hashes every file and
signs the manifest. The copy is ``shutil.copyfile`` of exactly the files the export wrote,
from the page cache.

Runs on the studies the registration benchmark registered (it must run first).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from benchmarks import Measurement

TARGET_RATIO = 30.0


def _consent_everyone() -> int:
    from audit.ledger import Actor
    from consent.models import Purpose
    from consent.selectors import current_form
    from consent.services import consent_record
    from registry.models import Patient

    ai, form = Purpose.objects.get(code="ai-training"), current_form()
    actor = Actor.system("bench")
    patients = list(Patient.objects.all())
    for patient in patients:
        consent_record(patient=patient, purpose=ai, decision="permit", actor=actor,
                       source="paper", form=form)
    return len(patients)


def run(work_dir: Path) -> list[Measurement]:
    from django.contrib.auth import get_user_model

    from audit.ledger import Actor
    from consent.models import Purpose
    from datasets.exports import dataset_create, export_run, version_dir
    from datasets.models import DatasetVersion, VersionStudy
    from registry.models import Instance

    print("  recording consent for every patient (untimed) ...", file=sys.stderr, flush=True)
    patients = _consent_everyone()
    owner = get_user_model().objects.create(username="bench-steward")
    dataset = dataset_create(
        name="bench", purpose=Purpose.objects.get(code="ai-training"), owner=owner,
        recipient="bench", selection={"date_from": "2000-01-01"}, actor=Actor.system("bench"),
        defaced_upstream=True)  # head volumes too: more files through the de-identifier
    # No worker: the job runs here, as a worker would run it.
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="bench")
    print(f"  exporting the studies of {patients:,} patients ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    version = export_run(version_id=version.pk)
    export_seconds = time.perf_counter() - start
    if version.status != "complete" or not version.files_written:
        raise RuntimeError(f"the export did not complete, so its rate means nothing: "
                           f"{version.status} {version.error}")

    included = VersionStudy.objects.filter(version=version, included=True).values("study_id")
    sources = [Path(p) for p in Instance.objects.filter(series__study__in=included)
               .values_list("path", flat=True)]
    copies = work_dir / "plain-copy"
    copies.mkdir()
    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        for number, path in enumerate(sources):
            shutil.copyfile(path, copies / f"{number}.dcm")
        seconds.append(time.perf_counter() - start)
    copy_rate = len(sources) / sorted(seconds)[1]
    export_rate = version.files_written / export_seconds
    left_out = version.studies_total - included.count()
    shutil.rmtree(version_dir(version), ignore_errors=True)
    return [
        Measurement("plain copy of the exported files", copy_rate, "files/s",
                    detail=f"{len(sources):,} files, median of 3, from the page cache"),
        Measurement("de-identified export (export_run)", export_rate, "files/s",
                    detail=f"{version.files_written:,} files, {version.studies_total:,} "
                           f"studies decided ({left_out} left out as unsafe), ledger and "
                           "signed manifest included"),
        Measurement("export / plain copy", 100 * export_rate / copy_rate, "%",
                    target=TARGET_RATIO),
    ]
