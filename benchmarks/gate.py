"""The export gate over a hospital: decide every study for ``ai-training`` (DESIGN.md: under
10 s for 1,000,000 studies, bounded memory, at least 50 times a per-study loop).

Each timing runs in a fresh child process (``python -m benchmarks.gate MODE``) so its peak
resident memory (``ru_maxrss``) is that of the work alone, not of the harness or of another
benchmark run before it. Modes:

- ``stream``: ``decide_stream`` over every study, each answer made in Python (its reason and
  deciding records) and dropped: what an export walks.
- ``counts``: ``decide_counts``: the outcomes counted by the database.
- ``preview``: what an export preview runs: the selection's safety facts and consent counted
  by ``decide_tally``.
- ``dict``: ``decide_many``, the answers gathered into one dict (the form every caller used
  before): for its memory, beside the stream's.
- ``loop``: the comparator, ``decide`` study by study over a random sample.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from benchmarks import Measurement

TARGET_SECONDS = 10.0
TARGET_SPEEDUP = 50.0


def _child(mode: str, sample: int) -> dict:
    """Run one mode in a new interpreter; what it printed as JSON."""
    done = subprocess.run(  # noqa: S603 - this interpreter and our own module
        [sys.executable, "-m", "benchmarks.gate", mode, str(sample)],
                          capture_output=True, text=True, check=False, env=os.environ.copy())
    if done.returncode != 0:
        raise RuntimeError(f"gate benchmark {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(*, sample: int = 2000) -> list[Measurement]:
    results: list[Measurement] = []
    print("  decide_stream over every study (child process) ...", file=sys.stderr, flush=True)
    stream = _child("stream", sample)
    print("  decide, study by study, over a sample ...", file=sys.stderr, flush=True)
    loop = _child("loop", sample)
    per_study = loop["seconds"] / loop["studies"]
    loop_total = per_study * stream["studies"]
    results.append(Measurement(
        f"gate: decide {stream['studies']:,} studies (stream)", stream["seconds"], "s",
        target=TARGET_SECONDS, at_most=True,
        detail=f"{stream['studies'] / stream['seconds']:,.0f} studies/s, "
               f"{stream['allowed']:,} allowed; peak RSS {stream['peak_mb']:,.0f} MB "
               f"({stream['base_mb']:,.0f} MB before deciding)",
        peak_mb=stream["peak_mb"]))
    results.append(Measurement(
        "gate: speed-up over a per-study loop", loop_total / stream["seconds"], "x",
        target=TARGET_SPEEDUP,
        detail=f"decide() {loop['studies']:,} sampled studies at "
               f"{loop['studies'] / loop['seconds']:,.0f} studies/s: {loop_total:,.0f} s "
               f"for all {stream['studies']:,}", peak_mb=loop["peak_mb"]))
    for mode, label in (("counts", "gate: decide_counts (outcomes counted in SQL)"),
                        ("preview", "gate: export preview counts (consent and safety)"),
                        ("dict", "gate: decide_many, answers gathered in a dict")):
        print(f"  {mode} (child process) ...", file=sys.stderr, flush=True)
        found = _child(mode, sample)
        results.append(Measurement(
            label, found["seconds"], "s",
            detail=f"{found['studies']:,} studies; peak RSS {found['peak_mb']:,.0f} MB "
                   f"({found['base_mb']:,.0f} MB before)", peak_mb=found["peak_mb"]))
    return results


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _main(mode: str, sample: int) -> None:
    import random

    import django

    django.setup()
    from django.conf import settings
    from django.utils import timezone

    from consent.engine import PurposeTree, decide, decide_counts, decide_many, decide_stream
    from datasets.selection import SAFETY_FLAGS, safety_columns, selected_studies
    from registry.models import ImagingStudy

    # A child of the harness only: never against a database the harness did not make.
    name = settings.DATABASES["default"]["NAME"]
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") and (
            name != os.environ.get("CONSENTRY_BENCH_DATABASE")):
        raise SystemExit(f"refusing to run on {name}: not the benchmark's database")
    tree = PurposeTree.load()
    now = timezone.now()
    studies = ImagingStudy.objects.all()
    total = studies.count()
    base = _peak_mb()
    allowed = 0
    start = time.perf_counter()
    if mode == "stream":
        for answer in decide_stream(studies, "ai-training", now, tree=tree):
            allowed += answer.decision.allowed
    elif mode == "counts":
        allowed = decide_counts(studies, "ai-training", now, tree=tree).allowed
    elif mode == "preview":
        from consent.engine import decide_tally

        decide_tally(safety_columns(selected_studies({"date_from": "1900-01-01"})),
                     "ai-training", now, tree=tree, by=SAFETY_FLAGS)
    elif mode == "dict":
        allowed = sum(d.allowed for d in decide_many(studies, "ai-training", now,
                                                     tree=tree).values())
    elif mode == "loop":
        ids = list(studies.order_by().values_list("id", flat=True))
        chosen = random.Random(15).sample(ids, min(sample, len(ids)))
        del ids
        base = _peak_mb()
        start = time.perf_counter()
        for study in ImagingStudy.objects.filter(pk__in=chosen).iterator():
            allowed += decide(study, "ai-training", now, tree=tree).allowed
        total = len(chosen)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "studies": total, "allowed": allowed, "seconds": seconds,
                      "peak_mb": _peak_mb(), "base_mb": base}))


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]))
