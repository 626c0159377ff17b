"""`make mutation`: mutation testing of the modules that decide (pyproject.toml,
[tool.mutmut]) with mutmut 3, on the embedded SQLite default, then the score and every
surviving mutant. Slow (minutes to hours with the machine's cores): never part of
`make test`. Arguments are passed to `mutmut run` (mutant names or globs, to run a few:
`make mutation MUTATION_ARGS='consent.engine*'`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent


def mutmut(*args: str, env: dict[str, str]) -> int:
    return subprocess.run([str(BIN / "mutmut"), *args], env=env, check=False).returncode  # noqa: S603


def print_per_module() -> None:
    """docs/mutation.md's table: each module's mutants by outcome, from mutmut's own results."""
    from mutmut.stats import status_by_exit_code

    print("\n| module | mutants | killed | timed out | survived | no tests | not run |")
    print("|---|---|---|---|---|---|---|")
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        count = {}
        for code in codes:
            status = status_by_exit_code[code]
            count[status] = count.get(status, 0) + 1
        module = meta.relative_to("mutants").as_posix().removesuffix(".meta")
        other = len(codes) - sum(count.get(k, 0) for k in (
            "killed", "timeout", "survived", "no tests", "not checked"))
        print(f"| `{module}` | {len(codes)} | {count.get('killed', 0)} | "
              f"{count.get('timeout', 0)} | {count.get('survived', 0)} | "
              f"{count.get('no tests', 0)} | {count.get('not checked', 0)} |"
              + (f" ({other} other: suspicious or interrupted)" if other else ""))
    print()


def main(argv: list[str]) -> int:
    data = tempfile.mkdtemp(prefix="consentry-mutation-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    # A throwaway key for throwaway databases, as make test's default.
    env.update(SECRET_KEY="mutation-only-key", SECURE_SSL_REDIRECT="false",  # noqa: S106
               CONSENTRY_DATA_DIR=data)
    children = os.environ.get("MUTATION_CHILDREN", str(os.cpu_count() or 2))
    status = mutmut("run", "--max-children", children, *argv, env=env)
    if mutmut("export-cicd-stats", env=env) != 0:
        return status or 1
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text())
    # Only mutants that were run count: an interrupted or partial run leaves others unchecked.
    tested = sum(stats[k] for k in ("killed", "survived", "timeout", "suspicious", "no_tests"))
    killed = stats["killed"] + stats["timeout"]
    score = 100.0 * killed / tested if tested else 0.0
    print(f"\n{tested} of {stats['total']} mutants run; "
          f"mutation score: {killed}/{tested} killed = {score:.1f}% "
          f"(survived {stats['survived']}, no tests {stats['no_tests']}, "
          f"suspicious {stats['suspicious']}, timeout {stats['timeout']})")
    print_per_module()
    print("surviving mutants (explained one by one in docs/mutation.md; "
          "`mutmut show NAME` prints each):")
    mutmut("results", env=env)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
