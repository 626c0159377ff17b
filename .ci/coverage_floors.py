"""Combine the coverage of every test run under var/coverage/, print it, and enforce the
floors of issue 18: branch coverage of the domain modules >= 95 %, of the whole project
(lines and branches, coverage.py's total) >= 90 %. Run by `make coverage` (and .ci/run
after both of its runs). Exit status 1 when a floor is not met, 2 when there is no data.
COVERAGE_FLOORS=report prints the same verdict without failing (for a partial local run)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from fnmatch import fnmatch
from pathlib import Path

import coverage

ENFORCE = os.environ.get("COVERAGE_FLOORS", "enforce") != "report"

DATA = Path("var/coverage")
COMBINED = DATA / "combined"
# The modules that decide: the engine, de-identification, the ledger, exports, access,
# registration (issue 18). Globs over the source paths coverage reports.
DOMAIN = [
    "consent/engine.py", "consent/decide_sql.py",
    "datasets/deid.py", "datasets/deid_bytes.py", "datasets/deid_write.py",
    "datasets/exports.py", "datasets/packaging.py", "datasets/manifest.py",
    "audit/ledger.py", "audit/verification.py", "audit/vouching.py",
    "access/tokens.py", "access/roles.py", "access/api_auth.py", "access/grants.py",
    "access/two_factor.py",
    "registry/registration.py", "registry/dicom.py", "registry/ingest_jobs.py",
]
DOMAIN_BRANCH_FLOOR = 95.0
PROJECT_FLOOR = 90.0


def main() -> int:
    runs = sorted(p for p in DATA.glob("*.*") if p.name != COMBINED.name
                  and not p.name.startswith(COMBINED.name))
    if not runs:
        print("no coverage data under var/coverage/: run `make test` first", file=sys.stderr)
        return 2
    COMBINED.unlink(missing_ok=True)
    cov = coverage.Coverage(data_file=str(COMBINED))  # settings from pyproject.toml
    cov.combine([str(p) for p in runs], keep=True)
    cov.save()
    print(f"coverage of {len(runs)} data file(s) from the run(s): "
          + ", ".join(sorted({p.name.split('.')[0] for p in runs})))
    cov.report(file=sys.stdout)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cov.json_report(outfile=out.name)
        report = json.loads(Path(out.name).read_text())
    failed = []
    print(f"{'domain module':40} {'branches':>10} {'covered':>8}")
    for name, entry in sorted(report["files"].items()):
        if not any(fnmatch(name, pattern) for pattern in DOMAIN):
            continue
        summary = entry["summary"]
        total, hit = summary["num_branches"], summary["covered_branches"]
        share = 100.0 * hit / total if total else 100.0
        print(f"{name:40} {hit:>4}/{total:<5} {share:7.1f}%")
        if share < DOMAIN_BRANCH_FLOOR:
            failed.append(f"{name}: {share:.1f}% of branches < {DOMAIN_BRANCH_FLOOR}%")
    project = report["totals"]["percent_covered"]
    print(f"whole project (lines and branches): {project:.1f}% (floor {PROJECT_FLOOR}%)")
    if project < PROJECT_FLOOR:
        failed.append(f"whole project: {project:.1f}% < {PROJECT_FLOOR}%")
    for line in failed:
        print("COVERAGE FLOOR NOT MET:", line)
    if failed and not ENFORCE:
        print("(COVERAGE_FLOORS=report: floors reported, not enforced)")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
