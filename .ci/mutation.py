"""`make mutation`: mutation testing of the modules that decide (pyproject.toml,
[tool.mutmut]) with mutmut 3, on the embedded SQLite default, then the score and every
surviving mutant. Slow (minutes to hours with the machine's cores): never part of
`make test`. Arguments are passed to `mutmut run` (mutant names or globs, to run a few:
`make mutation MUTATION_ARGS='consent.engine*'`).

`MUTATION_DATABASE_URL=postgres://…` runs the mutants on PostgreSQL instead: the ledger's
one-statement insert, generated column, advisory lock and parallel read run only there.
Its results are kept apart from SQLite's (`mutants/` is moved aside to `mutants-postgresql/`
and back), since a mutant's verdict can differ between the two."""

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


def postgresql_env(url: str) -> dict[str, str]:
    """Production mode on a throwaway server database, with the CI run's throwaway keys; no
    broker (tasks inline), as on SQLite. Templates left by an earlier run were migrated by
    other code: dropped, with any copy a killed run left behind."""
    import dj_database_url
    import psycopg

    database = dj_database_url.parse(url)
    base = f"test_{database['NAME']}_mut_"
    with psycopg.connect(dbname="postgres", user=database["USER"],
                         password=database["PASSWORD"] or None, host=database["HOST"] or None,
                         port=database["PORT"] or None, autocommit=True) as maintenance:
        stale = maintenance.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                    [base.replace("_", r"\_") + "%"]).fetchall()
        for (name,) in stale:
            maintenance.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    return {
        "DATABASE_URL": url,
        "CONSENTRY_IDENTIFIER_KEYS": "Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE=",
        "CONSENTRY_BLIND_INDEX_KEY": "mutation-only-blind-index-key-not-for-production",
    }


def main(argv: list[str]) -> int:
    data = tempfile.mkdtemp(prefix="consentry-mutation-")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    # A throwaway key for throwaway databases, as make test's default.
    env.update(SECRET_KEY="mutation-only-key", SECURE_SSL_REDIRECT="false",  # noqa: S106
               CONSENTRY_DATA_DIR=data)
    broker = os.environ.get("MUTATION_REDIS_URL", "redis://127.0.0.1:6379/11")
    if redis_answers(broker):  # the tests of the ledger's wake-up send to a real broker
        env["WORKER_REDIS_URL"] = broker
    url = os.environ.get("MUTATION_DATABASE_URL")
    if url:
        env.update(postgresql_env(url))
        swap_results("mutants-postgresql")
    try:
        return run(argv, env)
    finally:
        if url:
            swap_results("mutants-postgresql")


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except redis.RedisError:
        print(f"(no Redis at {url}: the tests that need a broker are skipped)")
        return False


def swap_results(other: str) -> None:
    """Exchange `mutants/` with `other`: each database keeps its own results."""
    here, there, spare = Path("mutants"), Path(other), Path(other + ".swap")
    if here.exists():
        here.rename(spare)
    if there.exists():
        there.rename(here)
    if spare.exists():
        spare.rename(there)


def run(argv: list[str], env: dict[str, str]) -> int:
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
