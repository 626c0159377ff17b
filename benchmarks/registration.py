"""DICOM registration rate against pydicom's own header-only read rate, on the same files.

DESIGN.md: registration must reach at least 50% of what ``pydicom.dcmread(path,
stop_before_pixels=True)`` achieves on the same files. Registration does more than that read
(it checks the file is complete, hashes it, writes patients, studies, series, instances and
ledger events), and the target is how much more it may cost.

Both sides read files that were just written, so both run from the page cache: this compares
processing cost, not disk speed.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pydicom

# consent.demo and consent.dicom are plain pydicom, no Django: safe to import before
# django.setup(). Modules that touch models (consent.registration, audit.ledger) are imported
# inside the functions that use them.
from benchmarks import Measurement, median_rate, spread
from consent import demo
from consent.dicom import read_header

# DESIGN.md: registration at >= 50% of pydicom's header-only read rate.
TARGET_RATIO = 50.0


def generate_files(out_dir: Path, count: int, *, seed: int = 2026) -> list[Path]:
    """Write about ``count`` synthetic DICOM files (whole studies, so up to two more).

    Uses the demo's generator so the files are what a demo hospital holds: the shapes of
    pydicom's test files (CT, MR, CR, US; 2 KB to 190 KB), new UIDs, made-up patients, two
    or three studies each."""
    rng = random.Random(seed)
    # More patients than needed; the loop stops at ``count`` files.
    patients = demo.synthetic_patients(count, seed=seed)
    base = date(2026, 11, 1)  # fixed, not today: the same seed gives the same files
    files: list[Path] = []
    accession = 500000
    for patient in patients:
        for recipe in rng.sample(demo.RECIPES, rng.choice((2, 3))):
            accession += 1
            files += demo.write_study(
                out_dir=out_dir, patient=patient, recipe=recipe,
                study_date=base - timedelta(days=rng.randrange(5 * 365)),
                accession=f"BENCH{accession}",
            )
            if len(files) >= count:
                return files
    return files


def _time_pydicom_header_read(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        pydicom.dcmread(path, stop_before_pixels=True)
    return time.perf_counter() - start


def _time_read_header(files: list[Path]) -> float:
    start = time.perf_counter()
    for path in files:
        read_header(path)
    return time.perf_counter() - start


def _register(files: list[Path], label: str) -> tuple[float, dict]:
    from audit.ledger import Actor
    from consent.registration import dicom_ingest_paths

    start = time.perf_counter()
    summary = dicom_ingest_paths(paths=files, actor=Actor.system(label), source="bench")
    return time.perf_counter() - start, summary.as_dict()


def run(work_dir: Path, *, file_count: int, repeats: int) -> list[Measurement]:
    """Generate the files, then time pydicom's read and registration over the same list."""
    files_dir = work_dir / "dicom"
    warmup_dir = work_dir / "dicom-warmup"
    print(f"  generating ~{file_count:,} synthetic DICOM files ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    files = generate_files(files_dir, file_count)
    # A separate small set, registered untimed, so the timed run starts with Django's and
    # pydicom's lazily built state (query compilers, dictionaries) already warm, as in a
    # long-running worker.
    warmup = generate_files(warmup_dir, 20, seed=7)
    total_bytes = sum(path.stat().st_size for path in files)
    print(f"  generated {len(files):,} files ({total_bytes / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    # Untimed pass: every file in the page cache and pydicom warm before the first timing.
    _time_pydicom_header_read(files)
    _register(warmup, "bench warm-up")

    print("  timing pydicom's header-only read ...", file=sys.stderr, flush=True)
    pydicom_seconds = [_time_pydicom_header_read(files) for _ in range(repeats)]
    print("  timing read_header (parsing only, no database) ...", file=sys.stderr, flush=True)
    parse_seconds = [_time_read_header(files) for _ in range(repeats)]
    print("  timing dicom_ingest_paths ...", file=sys.stderr, flush=True)
    # Once only: a second pass over the same files would find them registered ("known"),
    # which is other, cheaper work.
    register_seconds, summary = _register(files, "bench")
    if summary["registered"] != len(files):
        raise RuntimeError(f"registration did not register every file, so its rate means "
                           f"nothing: {summary}")

    pydicom_rate = median_rate(len(files), pydicom_seconds)
    parse_rate = median_rate(len(files), parse_seconds)
    register_rate = len(files) / register_seconds
    return [
        Measurement("pydicom dcmread(stop_before_pixels=True)", pydicom_rate, "files/s",
                    detail=f"{len(files):,} files, {spread(len(files), pydicom_seconds)}"),
        Measurement("read_header only (parse + sha256, no DB)", parse_rate, "files/s",
                    detail=f"{100 * parse_rate / pydicom_rate:.0f} % of pydicom; "
                           f"{spread(len(files), parse_seconds)}"),
        Measurement("dicom_ingest_paths (registration)", register_rate, "files/s",
                    detail=f"{summary['registered']:,} registered in {register_seconds:.1f} s, "
                           "1 run (a repeat would find them known)"),
        Measurement("registration / pydicom read", 100 * register_rate / pydicom_rate, "%",
                    target=TARGET_RATIO, detail="same files, both from the page cache"),
    ]
