"""``python -m benchmarks`` (``make bench``): a throwaway database, every benchmark, a table.

Safety first: the environment is rewritten *before* Django reads its settings, and the
settings Django ends up with are checked before anything is written, so a run can never
reach the installation's own database or data directory.

- Embedded mode (no ``DATABASE_URL``): ``CONSENTRY_DATA_DIR`` points at a temporary
  directory, so the SQLite file, secret key and any stored files live and die there.
- PostgreSQL (``DATABASE_URL`` set): a database with a new unique name
  (``consentry_bench_<random>``) is created on the same server, ``DATABASE_URL`` is rewritten
  to name it, it is migrated, and it is dropped at the end, even when a benchmark fails. Only
  that database is ever dropped: a name that already exists is refused, never reused.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from benchmarks import Measurement, usable_cpus

# Each run creates a database of its own, named with this prefix and a random suffix.
BENCH_PREFIX = "consentry_bench_"
# Where the run notes the name it created, for check_throwaway and child processes.
BENCH_NAME_VARIABLE = "CONSENTRY_BENCH_DATABASE"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


# name -> what it measures. Each is run by ``python -m benchmarks NAME``; none given: all.
BENCHMARKS = {
    "registration": "DICOM registration vs pydicom's own header read (synthetic files)",
    "exports": "de-identified export vs a plain copy of the same files",
    "ledger": "ledger appends with several writers, and verify()",
    "gate": "the export gate over the synthetic hospital (1,000,000 studies at scale 1) "
            "vs a per-study loop, with peak memory",
    "checks": "the consent-check API through gunicorn (2 workers): single checks at a steady "
              "rate (p50/p99), and batches",
}
# The hospital (benchmarks/hospital.py) is loaded once for those that need it.
NEEDS_HOSPITAL = ("gate", "checks")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _scale(text: str) -> float:
    value = float(text)
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"a scale is above 0 and at most 10, not {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    listed = "\n".join(f"  {name:<13} {what}" for name, what in BENCHMARKS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure Consentry against DESIGN.md's performance targets on a "
                    "throwaway database (PostgreSQL when DATABASE_URL is set, else SQLite).",
        epilog=f"benchmarks (all when none is named):\n{listed}\n\nResults are printed "
               f"and written to {RESULTS_DIR.name}/<UTC date and time>.json.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="benchmarks to run, by name (listed below)")
    parser.add_argument("--scale", type=_scale, default=1.0,
                        help="size of the synthetic hospital: 1 is 200,000 patients and "
                             "1,000,000 studies; 0.01 makes a quick run (default 1)")
    parser.add_argument("--files", type=_positive, default=2000,
                        help="synthetic DICOM files to register (default 2000)")
    parser.add_argument("--writers", type=_positive, default=4,
                        help="concurrent ledger writers (default 4, as in DESIGN.md)")
    parser.add_argument("--append-events", type=_positive, default=10_000,
                        help="events the writers append together (default 10000)")
    parser.add_argument("--append-seconds", type=float, default=20.0,
                        help="stop appending after this long, to bound the run (default 20)")
    parser.add_argument("--verify-events", type=_positive, default=50_000,
                        help="events in the chain verify() walks (default 50000)")
    parser.add_argument("--repeats", type=_positive, default=3,
                        help="rounds of the registration timing and runs of verify() "
                             "(default 3)")
    parser.add_argument("--sample", type=_positive, default=2000,
                        help="studies the gate's per-study loop decides (default 2000)")
    parser.add_argument("--rate", type=_positive, default=200,
                        help="single checks per second sent to the server (default 200)")
    parser.add_argument("--seconds", type=_positive, default=20,
                        help="how long the single checks are sent for (default 20)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR,
                        help=f"where the JSON results go (default {RESULTS_DIR})")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from "
                     f"{', '.join(BENCHMARKS)}")
    args.names = list(dict.fromkeys(args.names)) or list(BENCHMARKS)
    return args


# --- the throwaway PostgreSQL database -----------------------------------------------------

def _server_params(database_url: str) -> tuple[dict, str]:
    """psycopg connection keywords for DATABASE_URL's server, and the database it names."""
    import dj_database_url

    config = dj_database_url.parse(database_url)
    if "postgresql" not in config["ENGINE"]:
        raise SystemExit(f"benchmarks run on PostgreSQL or the embedded SQLite, not on "
                         f"{config['ENGINE']}")
    params = {"user": config.get("USER"), "password": config.get("PASSWORD"),
              "host": config.get("HOST"), "port": config.get("PORT") or None,
              **config.get("OPTIONS", {})}
    return ({key: value for key, value in params.items() if value not in (None, "")},
            config["NAME"])


def _admin_connection(params: dict, fallback: str):  # -> psycopg.Connection (lazy import)
    """A connection outside the bench database, as Django's own test runner makes one:
    the ``postgres`` maintenance database, else the one DATABASE_URL names (``fallback``)."""
    import psycopg

    try:
        return psycopg.connect(dbname="postgres", autocommit=True, **params)
    except psycopg.OperationalError:
        return psycopg.connect(dbname=fallback, autocommit=True, **params)


def new_bench_name() -> str:
    """A name no one else has: the run creates it, and drops only it."""
    return f"{BENCH_PREFIX}{secrets.token_hex(6)}"


@contextmanager
def bench_database(database_url: str) -> Iterator[str]:
    """Create a database of a new unique name on DATABASE_URL's server; yield its URL; drop
    it after. A database that already exists is never dropped, even one named like a
    benchmark's: the run drops exactly the database its own CREATE made."""
    import psycopg

    parts = urlsplit(database_url)
    params, own_database = _server_params(database_url)
    name = new_bench_name()
    if name == own_database:
        raise SystemExit(f"DATABASE_URL names {name!r}, the name this run picked; rerun")
    with _admin_connection(params, own_database) as admin:
        try:
            admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.DuplicateDatabase as exc:
            # Someone else's: leave it exactly as it is.
            raise SystemExit(f"a database named {name!r} already exists; the benchmark "
                             "never touches a database it did not create") from exc
        except psycopg.errors.InsufficientPrivilege as exc:
            raise SystemExit(f"DATABASE_URL's role may not create databases, which the "
                             f"benchmark needs for its throwaway {name!r}: {exc}") from exc
        # FORCE (PostgreSQL 13+) ends sessions a benchmark's worker processes left open.
        force = " WITH (FORCE)" if admin.info.server_version >= 130000 else ""
    os.environ[BENCH_NAME_VARIABLE] = name
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        from django.db import connections

        connections.close_all()
        with _admin_connection(params, own_database) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')


# --- setup checks and the machine ----------------------------------------------------------

def check_throwaway(work_dir: Path) -> None:
    """Refuse to run unless Django really points at the throwaway database.

    A plain ``raise``, not ``assert``: this must hold under ``python -O`` too."""
    from django.conf import settings
    from django.db import connection

    name = settings.DATABASES["default"]["NAME"]
    if connection.vendor == "postgresql":
        ok = bool(name) and name == os.environ.get(BENCH_NAME_VARIABLE)
    else:
        ok = Path(name).resolve().is_relative_to(work_dir.resolve())
    if not ok or not Path(settings.DATA_DIR).resolve().is_relative_to(work_dir.resolve()):
        raise SystemExit(f"refusing to run: Django points at {name} / {settings.DATA_DIR}, "
                         "not at the benchmark's throwaway database and directory")


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key:
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _filesystem(path: Path) -> str:
    """The filesystem holding ``path``: tmpfs would flatter file and SQLite timings."""
    best, fstype = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return fstype
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) > 2 and resolved.startswith(fields[1]) and len(fields[1]) > len(best):
            best, fstype = fields[1], fields[2]
    return fstype


def _database() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            settings_shown = []
            for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers"):
                cursor.execute(f"SHOW {name}")
                settings_shown.append(f"{name}={cursor.fetchone()[0]}")
            host = connection.settings_dict.get("HOST") or "local socket"
            return (f"PostgreSQL ({', '.join(settings_shown)}) at {host}, "
                    f"database {connection.settings_dict['NAME']}")
        cursor.execute("select sqlite_version()")
        version = cursor.fetchone()[0]
        cursor.execute("PRAGMA journal_mode")
        journal = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cursor.fetchone()[0])
        return (f"SQLite {version} (embedded, journal_mode={journal}, "
                f"synchronous={synchronous}), file in the temporary directory")


def describe_machine(work_dir: Path) -> list[tuple[str, str]]:
    import django
    import pydicom

    return [
        ("nproc", f"{usable_cpus()} (of {os.cpu_count()} CPUs)"),
        ("CPU", _cpu_model()),
        ("database", _database()),
        ("files", f"{work_dir} ({_filesystem(work_dir)})"),
        ("software", f"Python {platform.python_version()}, Django {django.get_version()}, "
                     f"pydicom {pydicom.__version__}, {platform.system()} "
                     f"{platform.release()}"),
    ]


def print_report(machine: list[tuple[str, str]], results: list[Measurement],
                 seconds: float) -> None:
    print()
    print("Consentry benchmarks (DESIGN.md, \"Performance\")")
    for key, value in machine:
        print(f"  {key:<9} {value}")
    print()
    widths = (50, 17, 20, 6)
    header = ("measurement", "result", "target", "")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for m in results:
        sign = "<=" if m.at_most else ">="
        target = f"{sign} {m.formatted(m.target)}" if m.target is not None else ""
        cells = (m.name, m.formatted(), target, m.verdict)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if m.detail:
            print(f"    {m.detail}")
    print()
    print(f"Targets are DESIGN.md's for a 2-core machine with PostgreSQL. Run took "
          f"{seconds:.0f} s.")


# --- the run -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    # Anything else busy on the machine slows every row; the report shows it.
    load_before = os.getloadavg()[0]
    work_dir = Path(tempfile.mkdtemp(prefix="consentry-bench-"))
    # Every path Consentry derives from its data directory (SQLite file, secret key, DICOM
    # store, exports) now lies inside the temporary directory.
    os.environ["CONSENTRY_DATA_DIR"] = str(work_dir / "data")
    # These settings, never another module that could name another database.
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # DEBUG keeps every query in memory; numbers taken with it on would not be production's.
    os.environ["DEBUG"] = "false"
    # Nothing measured here goes through Celery or the cache; without REDIS_URL nothing the
    # run does can reach the installation's broker either.
    os.environ.pop("REDIS_URL", None)
    database_url = os.environ.get("DATABASE_URL", "")
    try:
        with _database_for_run(database_url) as bench_url:
            if bench_url:
                os.environ["DATABASE_URL"] = bench_url
                if not os.environ.get("SECRET_KEY"):
                    # Settings refuse to start without one when DATABASE_URL is set. Nothing
                    # signed during the run outlives it, so a key made for this run will do.
                    os.environ["SECRET_KEY"] = secrets.token_urlsafe(50)
            return _run(args, work_dir, started, load_before)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


@contextmanager
def _database_for_run(database_url: str) -> Iterator[str]:
    """The bench PostgreSQL URL, or "" for the embedded SQLite in the temporary directory."""
    if not database_url:
        yield ""
        return
    with bench_database(database_url) as bench_url:
        yield bench_url


def _run(args: argparse.Namespace, work_dir: Path, started: float, load_before: float
         ) -> int:
    import django

    django.setup()
    check_throwaway(work_dir)
    from django.core.management import call_command

    print("Migrating the throwaway database ...", file=sys.stderr, flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    machine = describe_machine(work_dir)

    results: list[Measurement] = []
    memory: dict[str, float] = {}
    for name in args.names:
        print(f"{name}:", file=sys.stderr, flush=True)
        if name in NEEDS_HOSPITAL and not _hospital_loaded():
            from benchmarks import hospital

            print(f"  loading the synthetic hospital at scale {args.scale} (untimed) ...",
                  file=sys.stderr, flush=True)
            made = hospital.load(scale=args.scale)
            machine.append(("hospital", f"{made.patients:,} patients, {made.studies:,} "
                                        f"studies, {made.series:,} series, {made.records:,} "
                                        f"consent records, loaded in {made.seconds:.0f} s"))
        results += _run_one(name, args, work_dir)
        # The harness process's own peak so far; the gate measures its children apart.
        memory[name] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load_after = os.getloadavg()[0]
    machine.append(("load", f"1-minute load average {load_before:.2f} before the run, "
                            f"{load_after:.2f} at its end (the run itself adds about "
                            "1; more means other work shared the CPUs)"))
    seconds = time.perf_counter() - started
    print_report(machine, results, seconds)
    path = write_results(args.results_dir, machine, results, seconds, args, memory)
    print(f"Results written to {path}")
    return 0


def _hospital_loaded() -> bool:
    from registry.models import Patient

    return Patient.objects.filter(issuer="BENCH").exists()


def _run_one(name: str, args: argparse.Namespace, work_dir: Path) -> list[Measurement]:
    # Imported here: the modules import Django models, which need django.setup() first.
    if name == "registration":
        from benchmarks import registration

        return registration.run(work_dir, file_count=args.files, repeats=args.repeats)
    if name == "exports":
        from benchmarks import exports, registration
        from registry.models import Instance

        if not Instance.objects.exists():
            # The export runs on the registered files: register them first, untimed.
            registration.run(work_dir, file_count=args.files, repeats=1)
        return exports.run(work_dir)
    if name == "ledger":
        from benchmarks import ledger

        return ledger.run(writers=args.writers, append_events=args.append_events,
                          append_seconds=args.append_seconds,
                          verify_events=args.verify_events, repeats=args.repeats)
    if name == "gate":
        from benchmarks import gate

        return gate.run(sample=args.sample)
    if name == "checks":
        from benchmarks import checks

        return checks.run(work_dir, rate=args.rate, seconds=args.seconds)
    raise ValueError(name)


def write_results(directory: Path, machine: list[tuple[str, str]],
                  results: list[Measurement], seconds: float, args: argparse.Namespace,
                  memory: dict[str, float]) -> Path:
    """benchmarks/results/<UTC date and time>.json: what ran, where, and what it measured."""
    import json
    from datetime import UTC, datetime

    when = datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{when:%Y-%m-%dT%H%M%SZ}.json"
    path.write_text(json.dumps({
        "finished_at": when.isoformat(),
        "benchmarks": args.names,
        "arguments": {k: (str(v) if isinstance(v, Path) else v)
                      for k, v in vars(args).items() if k != "names"},
        "machine": dict(machine),
        "seconds": seconds,
        "harness_peak_mb_after": memory,
        "results": [m.as_json() for m in results],
    }, indent=2) + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
