"""Reproducible benchmarks for DESIGN.md, "Performance" (``make bench``).

Run as ``python -m benchmarks``. A run never touches the data of the installation it sits
beside: it works on synthetic DICOM files written into a temporary directory and on a
throwaway database (a SQLite file in that directory, or, when ``DATABASE_URL`` is set, a
PostgreSQL database with a new unique name, created for the run and dropped after).

The modules here import no Django model at import time, so ``__main__`` can load them before
it has pointed Django at the throwaway database.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass


def usable_cpus() -> int:
    """What ``nproc`` prints: the CPUs this process may run on, not those the host has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class Measurement:
    """One printed row: a rate (or ratio) and, when DESIGN.md sets one, its floor."""

    name: str
    value: float
    unit: str
    # The DESIGN.md floor the value must reach (or, with ``at_most``, the ceiling it must
    # stay under); None for rows that only explain others.
    target: float | None = None
    detail: str = ""
    # Peak resident memory of the process that did the work, when measured (MB).
    peak_mb: float | None = None
    at_most: bool = False

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        ok = self.value <= self.target if self.at_most else self.value >= self.target
        return "meets" if ok else "MISSES"

    def formatted(self, value: float | None = None) -> str:
        value = self.value if value is None else value
        if self.unit == "%":
            return f"{value:.0f} %"
        if self.unit in ("s", "ms"):
            return f"{value:,.1f} {self.unit}"
        if self.unit == "x":
            return f"{value:,.0f}x"
        return f"{value:,.0f} {self.unit}"

    def as_json(self) -> dict:
        return {"name": self.name, "value": self.value, "unit": self.unit,
                "target": self.target, "target_is": "at most" if self.at_most else "at least",
                "verdict": self.verdict, "detail": self.detail, "peak_mb": self.peak_mb}


def median_rate(count: int, seconds: list[float]) -> float:
    """Items per second over the median of repeated timings.

    The median, not the best run: the best of several is what a lucky machine does, the median
    is what a user can expect, and one stray slow run (a page-cache flush, a checkpoint) does
    not move it."""
    return count / statistics.median(seconds)


def spread(count: int, seconds: list[float]) -> str:
    """The range of rates across repeats, so a reader can see how noisy the number is."""
    if len(seconds) < 2:
        return "1 run"
    rates = sorted(count / s for s in seconds)
    return f"{len(seconds)} runs, {rates[0]:,.0f} to {rates[-1]:,.0f}"
