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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure Consentry against DESIGN.md's performance targets on a "
                    "throwaway database (PostgreSQL when DATABASE_URL is set, else SQLite).")
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
    return parser.parse_args(argv)


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
    widths = (44, 17, 20, 6)
    header = ("measurement", "result", "target", "")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for m in results:
        target = f">= {m.formatted(m.target)}" if m.target is not None else ""
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

    from benchmarks import exports, ledger, registration

    print("DICOM registration:", file=sys.stderr, flush=True)
    results = registration.run(work_dir, file_count=args.files, repeats=args.repeats)
    print("De-identified export:", file=sys.stderr, flush=True)
    results += exports.run(work_dir)
    print("Ledger:", file=sys.stderr, flush=True)
    results += ledger.run(writers=args.writers, append_events=args.append_events,
                          append_seconds=args.append_seconds,
                          verify_events=args.verify_events, repeats=args.repeats)
    machine.append(("load", f"1-minute load average {load_before:.2f} before the run, "
                            f"{os.getloadavg()[0]:.2f} at its end (the run itself adds about "
                            "1; more means other work shared the CPUs)"))
    print_report(machine, results, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
