"""De-identified export rate per worker process against a plain copy of the same files, its
scaling from one worker process to two, and dicognito on the same files as a peer.

DESIGN.md: an export reaches at least 30 % of a plain copy's rate per worker process, is
faster per file than dicognito, and one export shared by two worker processes is close to
twice as fast as by one. The export does far more than copy: it decides consent for the
selection, reads each study's headers for safety, re-checks consent before writing,
de-identifies every header (PS3.15 table, UID HMACs, date shift) and copies its pixel data,
records one fate and ledger event per study (in batches), hashes every file and signs the
manifest. The copy is ``shutil.copyfile`` of exactly the files the export wrote, from the
page cache; dicognito reads, anonymises and writes each of them whole.

Each export runs in fresh worker processes (``export_run``, as a Celery worker runs it),
timed from the first process's start of work to the last one's end. Two processes at once
need PostgreSQL (SKIP LOCKED); on the embedded SQLite only one is measured.

Runs on the studies the registration benchmark registered (it must run first), except
those whose pixels the burned-in text check reads with OCR (ultrasound): seconds an image
of Tesseract, which is neither de-identification nor copying.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import Measurement

TARGET_RATIO = 30.0  # % of a plain copy, per worker process
TARGET_SCALING = 170.0  # % of one worker process's rate with two ("close to linear")
TARGET_PEER = 100.0  # % of dicognito's rate: faster per file

# One worker process: set up Django, then time export_run alone.
# CONSENTRY_BENCH_PROFILE=<directory>: each worker process also writes a cProfile of its
# export_run there (where the time goes; the rates then include the profiler's cost).
WORKER = """
import cProfile, json, os, sys, time
import django
django.setup()
from datasets.exports import export_run
profile_dir = os.environ.get("CONSENTRY_BENCH_PROFILE")
profiler = cProfile.Profile() if profile_dir else None
start = time.time()
if profiler:
    profiler.enable()
export_run(version_id=int(sys.argv[1]))
if profiler:
    profiler.disable()
    profiler.dump_stats(os.path.join(profile_dir, f"export-{sys.argv[1]}-{os.getpid()}.prof"))
print(json.dumps({"start": start, "end": time.time()}))
"""


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


def export_in_processes(version_id: int, processes: int) -> float:
    """Seconds from the first worker process's start of work to the last one's end."""
    from django.db import connections

    connections.close_all()  # the children open their own
    children = [subprocess.Popen([sys.executable, "-c", WORKER, str(version_id)],  # noqa: S603
                                 stdout=subprocess.PIPE, text=True)
                for _ in range(processes)]
    spans = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode:
            raise RuntimeError(f"an export worker process failed ({child.returncode})")
        spans.append(json.loads(out.strip().splitlines()[-1]))
    return max(s["end"] for s in spans) - min(s["start"] for s in spans)


def _export(dataset, number: int, processes: int):
    from datasets.exports import version_dir
    from datasets.models import DatasetVersion

    version = DatasetVersion.objects.create(dataset=dataset, number=number,
                                            requested_by="bench")
    seconds = export_in_processes(version.pk, processes)
    version.refresh_from_db()
    if version.status != "complete" or not version.files_written:
        raise RuntimeError(f"the export did not complete, so its rate means nothing: "
                           f"{version.status} {version.error}")
    shutil.rmtree(version_dir(version), ignore_errors=True)
    return version, seconds


def _dicognito_rate(sources: list[Path], out_dir: Path) -> float | None:
    try:
        import pydicom
        from dicognito.anonymizer import Anonymizer
    except ImportError:
        print("  dicognito is not installed (pip install -e '.[bench]'): peer skipped",
              file=sys.stderr, flush=True)
        return None
    out_dir.mkdir()
    anonymizer = Anonymizer()
    start = time.perf_counter()
    for number, path in enumerate(sources):
        ds = pydicom.dcmread(path)
        anonymizer.anonymize(ds)
        ds.save_as(out_dir / f"{number}.dcm")
    return len(sources) / (time.perf_counter() - start)


def run(work_dir: Path, *, processes: int = 2) -> list[Measurement]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from audit.ledger import Actor
    from consent.models import Purpose
    from datasets.exports import dataset_create
    from datasets.models import VersionStudy
    from datasets.selection import BURNED_IN_PRONE
    from registry.models import ImagingStudy, Instance

    print("  recording consent for every patient (untimed) ...", file=sys.stderr, flush=True)
    patients = _consent_everyone()
    owner = get_user_model().objects.create(username="bench-steward")
    # Every study but those the burned-in text check must read with OCR (ultrasound here):
    # OCR costs seconds an image and is measured by nothing here; it is not de-identification.
    uids = sorted(ImagingStudy.objects.exclude(series__modality__in=BURNED_IN_PRONE)
                  .values_list("study_uid", flat=True))
    dataset = dataset_create(
        name="bench", purpose=Purpose.objects.get(code="ai-training"), owner=owner,
        recipient="bench", selection={"study_uids": uids}, actor=Actor.system("bench"),
        defaced_upstream=True)  # head volumes too: more files through the de-identifier
    print(f"  exporting the studies of {patients:,} patients, 1 worker process ...",
          file=sys.stderr, flush=True)
    one, one_seconds = _export(dataset, 1, 1)
    one_rate = one.files_written / one_seconds

    included = VersionStudy.objects.filter(version=one, included=True).values("study_id")
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
    print("  dicognito on the same files ...", file=sys.stderr, flush=True)
    peer_rate = _dicognito_rate(sources, work_dir / "dicognito")
    left_out = one.studies_total - included.count()
    results = [
        Measurement("plain copy of the exported files", copy_rate, "files/s",
                    detail=f"{len(sources):,} files, median of 3, from the page cache"),
        Measurement("de-identified export, 1 worker process", one_rate, "files/s",
                    detail=f"{one.files_written:,} files, {one.studies_total:,} studies "
                           f"decided ({left_out} left out as unsafe), ledger and signed "
                           "manifest included"),
        Measurement("export (1 worker process) / plain copy", 100 * one_rate / copy_rate, "%",
                    target=TARGET_RATIO),
    ]
    if peer_rate is not None:
        results += [
            Measurement("dicognito, same files (read, anonymise, write)", peer_rate,
                        "files/s", detail="files only: no consent, ledger or manifest"),
            Measurement("export (1 worker process) / dicognito", 100 * one_rate / peer_rate,
                        "%", target=TARGET_PEER),
        ]
    if connection.vendor != "postgresql":
        print("  several worker processes on one export need PostgreSQL: skipped",
              file=sys.stderr, flush=True)
        return results
    print(f"  the same export shared by {processes} worker processes ...", file=sys.stderr,
          flush=True)
    many, many_seconds = _export(dataset, 2, processes)
    many_rate = many.files_written / many_seconds
    results += [
        Measurement(f"de-identified export, {processes} worker processes", many_rate,
                    "files/s", detail=f"{many.files_written:,} files; shards of "
                                      "EXPORT_SHARD_STUDIES studies claimed with SKIP LOCKED"),
        Measurement(f"export, {processes} worker processes / 1 worker process",
                    100 * many_rate / one_rate, "%",
                    target=TARGET_SCALING if processes == 2 else None),
    ]
    return results
