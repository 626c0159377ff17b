"""DICOM registration rate against pydicom's own header-only read rate, on the same files.

DESIGN.md: registration must reach at least 50% of what ``pydicom.dcmread(path,
stop_before_pixels=True)`` achieves on the same files. Registration does more than that read
(it checks the file is complete, hashes it, writes patients, studies, series, instances and
ledger events), and the target is how much more it may cost.

Both sides read files that were just written, so both run from the page cache: this compares
processing cost, not disk speed.
"""

from __future__ import annotations

import dataclasses
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

import pydicom

# registry.demo and registry.dicom are plain pydicom, no Django: safe to import before
# django.setup(). Modules that touch models (registry.registration, audit.ledger) are imported
# inside the functions that use them.
from benchmarks import Measurement, usable_cpus
from registry import demo
from registry.dicom import read_header

# DESIGN.md: registration at >= 50% of pydicom's header-only read rate.
TARGET_RATIO = 50.0


def plan_studies(out_dir: Path, count: int, *, seed: int = 2026, mrn_prefix: str = "BENCH"
                 ) -> list[dict]:
    """``write_study`` arguments for about ``count`` files (whole studies: up to two more).

    The files are what the demo hospital holds: the shapes of pydicom's test files (CT, MR,
    CR, US; 2 KB to 190 KB), new UIDs, made-up patients with two or three studies each.
    Planned up front, from one seeded generator, so writing can be spread over processes and
    the same seed still gives the same studies."""
    rng = random.Random(seed)
    base = date(2026, 11, 1)  # fixed, not today: the same seed gives the same files
    plan: list[dict] = []
    files = 0
    # More patients than can be needed; the loop stops at ``count`` files.
    for number, synthetic in enumerate(demo.synthetic_patients(count, seed=seed), start=1):
        # Own MRNs, so the warm-up set and the timed set never share a patient.
        patient = dataclasses.replace(synthetic, mrn=f"{mrn_prefix}{number:05d}")
        for recipe in rng.sample(demo.RECIPES, rng.choice((2, 3))):
            plan.append({
                "out_dir": out_dir, "patient": patient, "recipe": recipe,
                "study_date": base - timedelta(days=rng.randrange(5 * 365)),
                "accession": f"BN{seed % 1000:03d}{len(plan):07d}",  # SH: 16 characters at most
            })
            files += len(recipe.templates)
            if files >= count:
                return plan
    return plan


def _write_study(arguments: dict) -> list[Path]:
    # Module level, so a worker process can unpickle a reference to it.
    return demo.write_study(**arguments)


def generate_studies(out_dir: Path, count: int, *, seed: int = 2026,
                     mrn_prefix: str = "BENCH") -> list[list[Path]]:
    """Write the planned studies (a list of files each), one worker process per CPU:
    writing 2,000 files takes about 20 s on one core, a sixth of the time budget, and none
    of it is measured."""
    plan = plan_studies(out_dir, count, seed=seed, mrn_prefix=mrn_prefix)
    # Workers only run pydicom (no database), so forking after django.setup() is harmless;
    # the children leave with os._exit and never touch the parent's connections.
    with ProcessPoolExecutor(max_workers=usable_cpus()) as pool:
        return list(pool.map(_write_study, plan, chunksize=16))


def split_rounds(studies: list[list[Path]], rounds: int) -> list[list[Path]]:
    """Consecutive whole studies in ``rounds`` groups of about equal file counts."""
    total = sum(len(files) for files in studies)
    groups: list[list[Path]] = [[] for _ in range(rounds)]
    done = 0
    for files in studies:
        groups[min(rounds - 1, done * rounds // total)].extend(files)
        done += len(files)
    return [group for group in groups if group]


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
    from registry.registration import dicom_ingest_paths

    start = time.perf_counter()
    summary = dicom_ingest_paths(paths=files, actor=Actor.system(label), source="bench")
    return time.perf_counter() - start, summary.as_dict()


def run(work_dir: Path, *, file_count: int, repeats: int) -> list[Measurement]:
    """Generate the files, then time pydicom's read, read_header and registration on them.

    Registration can run only once per file (a second pass finds the files registered,
    which is other, cheaper work), so instead of repeating it the files are split into
    ``repeats`` rounds, and each round times the three back to back on its own files. Load
    from anything else on the machine then falls on all three alike, and the per-round
    ratios show how steady the result is."""
    print(f"  generating ~{file_count:,} synthetic DICOM files ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    studies = generate_studies(work_dir / "dicom", file_count)
    files = [path for study in studies for path in study]
    # A separate small set, registered untimed, so the timed rounds start with Django's and
    # pydicom's lazily built state (query compilers, dictionaries) already warm, as in a
    # long-running worker.
    warmup = [path for study in generate_studies(work_dir / "dicom-warmup", 20, seed=7,
                                                 mrn_prefix="WARMUP") for path in study]
    total_bytes = sum(path.stat().st_size for path in files)
    print(f"  generated {len(files):,} files ({total_bytes / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    # Untimed pass: every file in the page cache and pydicom warm before the first timing.
    _time_pydicom_header_read(files)
    _register(warmup, "bench warm-up")

    timings: list[tuple[int, float, float, float]] = []  # files, pydicom, parse, register
    registered = 0
    for number, group in enumerate(split_rounds(studies, repeats), start=1):
        print(f"  round {number}: pydicom read, read_header, dicom_ingest_paths on "
              f"{len(group):,} files ...", file=sys.stderr, flush=True)
        pydicom_seconds = _time_pydicom_header_read(group)
        parse_seconds = _time_read_header(group)
        register_seconds, summary = _register(group, "bench")
        if summary["registered"] != len(group):
            raise RuntimeError(f"registration did not register every file, so its rate "
                               f"means nothing: {summary}")
        registered += summary["registered"]
        timings.append((len(group), pydicom_seconds, parse_seconds, register_seconds))

    def rate(column: int) -> float:
        return len(files) / sum(t[column] for t in timings)

    def per_round(column: int) -> str:
        ratios = sorted(100 * t[1] / t[column] for t in timings)
        return f"per round {ratios[0]:.0f} to {ratios[-1]:.0f} %"

    pydicom_rate, parse_rate, register_rate = rate(1), rate(2), rate(3)
    rounds = f"{len(timings)} rounds over {len(files):,} files"
    return [
        Measurement("pydicom dcmread(stop_before_pixels=True)", pydicom_rate, "files/s",
                    detail=f"{rounds} ({total_bytes / 1e6:.0f} MB), from the page cache"),
        Measurement("read_header only (parse + sha256, no DB)", parse_rate, "files/s",
                    detail=f"{100 * parse_rate / pydicom_rate:.0f} % of pydicom; "
                           f"{per_round(2)}"),
        Measurement("dicom_ingest_paths (registration)", register_rate, "files/s",
                    detail=f"{registered:,} new files (new patients and studies), batches "
                           "of 200, ledger events included"),
        Measurement("registration / pydicom read", 100 * register_rate / pydicom_rate, "%",
                    target=TARGET_RATIO, detail=f"same files; {per_round(3)}"),
    ]
