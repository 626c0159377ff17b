"""Ledger append rate with concurrent writers, and verification rate over a long chain.

DESIGN.md: append >= 5,000 events/s with 4 writers; verify >= 200,000 events/s.

Append is timed through ``ledger.record()``, exactly as services call it, in separate writer
processes: each event is its own transaction. Sealing runs as in production with a broker: a
separate sealer process (standing in for the Celery worker the writers' debounced wake-ups
reach). The clock stops only when every event is chained, because an event that is not
chained yet is not yet protected by the hash chain.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from datetime import timedelta

from benchmarks import Measurement, median_rate, spread

# DESIGN.md floors.
TARGET_APPEND = 5_000.0
TARGET_VERIFY = 200_000.0


def _event_fields(writer: int, n: int) -> dict:
    """A consent check as the API would record it: the most frequent event in production."""
    return {
        "action": "consent.checked",
        "patient_ref": str(1000 + n % 500),
        "study_uid": f"2.25.{uuid.UUID(int=writer << 64 | n).int}",
        "purpose_code": "ai-training",
        "reason": "permit by consent record 42 (purpose ai-training, scope all)",
        "details": {"writer": writer, "n": n, "decision": "permit"},
        "correlation_id": f"bench-{writer}",
    }


def _writer(number: int, per_writer: int, seconds: float, barrier, appended,
            durable: bool) -> None:
    """One writer process: ``record()`` one event per transaction, as services do.

    ``durable=False`` turns the session's synchronous_commit off: a commit then no longer
    waits for the WAL to reach the disk. Never how Consentry runs; it shows how much of the
    time is the disk's flush latency and how much the code's own work."""
    from celery import current_app
    from django.db import connection

    from audit import ledger

    # As in production, where Celery has a broker: after each commit the writer at most
    # sends a debounced wake-up and never seals. (The run has no Redis: the wake-ups go to
    # Celery's in-memory transport, and the sealer process below stands in for the worker.)
    current_app.conf.task_always_eager = False
    actor = ledger.Actor.system("bench writer")
    connection.ensure_connection()
    if not durable:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
    barrier.wait(timeout=120)
    deadline = time.perf_counter() + seconds
    done = 0
    for n in range(per_writer):
        ledger.record(actor=actor, **_event_fields(number, n))
        done += 1
        if done % 64 == 0:
            appended[number] = done
        if time.perf_counter() > deadline:
            break
    appended[number] = done
    connection.close()


def _sealer(stop, sealed) -> None:
    """The Celery worker's part: one sealer, woken every SEAL_DEBOUNCE seconds while
    events arrive, until told to stop; then it seals what is left."""
    from django.db import connection

    from audit import ledger

    total = 0
    while not stop.is_set():
        count = ledger.seal(wait=True)
        total += count
        if count < ledger.SEAL_BATCH:
            stop.wait(ledger.SEAL_DEBOUNCE)
    total += ledger.seal(wait=True)
    sealed.value = total
    connection.close()


def append_rate(*, writers: int, events: int, seconds: float, durable: bool = True
                ) -> Measurement:
    """``events`` records split over ``writers`` processes, each on its own connection, and
    one sealer process.

    Writers also stop after ``seconds``, so a slow database bounds the run time rather than
    stretching it; the rate is the same count over the same clock either way. The clock
    stops when every event is chained."""
    import multiprocessing

    from django.db import connections

    from audit.models import ChainLink, PendingSeal

    per_writer = events // writers
    links_before = ChainLink.objects.count()
    # Children are forked: none may inherit this process's database socket.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    # All writers connect first, then start together: the timing covers appending, not
    # starting processes or opening connections.
    barrier = context.Barrier(writers + 1)
    appended = context.Array("q", writers)
    stop = context.Event()
    sealed = context.Value("q", 0)
    sealer = context.Process(target=_sealer, args=(stop, sealed), name="bench-sealer")
    sealer.start()
    processes = [context.Process(target=_writer, name=f"bench-writer-{i}",
                                 args=(i, per_writer, seconds, barrier, appended, durable))
                 for i in range(writers)]
    for process in processes:
        process.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        # Broken only when a writer died before starting: reported below.
        barrier.wait(timeout=120)
    start = time.perf_counter()
    for process in processes:
        process.join()
    committed = time.perf_counter() - start
    stop.set()
    sealer.join()
    elapsed = time.perf_counter() - start
    failed = [p.name for p in (*processes, sealer) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"ledger benchmark processes failed: {failed}")

    total = sum(appended)
    stopped = (f" (the {seconds:.0f} s limit stopped the writers)"
               if total < per_writer * writers else "")
    chained = ChainLink.objects.count() - links_before
    if chained != total or PendingSeal.objects.exists():
        raise RuntimeError(f"{total} events appended but {chained} chained")
    if not durable:
        return Measurement(
            "  same, synchronous_commit off", total / elapsed, "events/s",
            detail=f"{total:,} events{stopped}: commits not waiting for the disk's flush, "
                   "which is what limits the row above (never how Consentry runs)")
    return Measurement(
        f"ledger append, {writers} writers", total / elapsed, "events/s", target=TARGET_APPEND,
        detail=f"{total:,} events{stopped}, {writers} writer processes, 1 transaction each; "
               f"{total / committed:,.0f}/s committed; one sealer process (the Celery "
               f"worker's part) chained all {sealed.value:,} before the clock stopped")


def _commit_latency(commits: int = 200) -> Measurement | None:
    """What one durable commit costs on this server: the floor under one writer's appends."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        # A plain table (temporary ones write no WAL) in the throwaway database.
        cursor.execute("CREATE TABLE bench_commit_latency (n integer)")
        try:
            start = time.perf_counter()
            for n in range(commits):
                cursor.execute("INSERT INTO bench_commit_latency VALUES (%s)", [n])
            elapsed = time.perf_counter() - start
        finally:
            cursor.execute("DROP TABLE bench_commit_latency")
    per_commit = elapsed / commits
    return Measurement("one durable commit, 1 writer", 1 / per_commit, "commits/s",
                       detail=f"{per_commit * 1000:.2f} ms each, one INSERT per commit: the "
                              "disk's flush latency bounds each writer's appends")


def fill_chain(total: int) -> tuple[int, float]:
    """Add events until the ledger holds ``total``, then seal them all.

    The filler rows are bulk-inserted with the canonical text and digest ``record()`` would
    give them (through ledger.canonical_text): appending 50,000 events one transaction at a
    time would only repeat the append benchmark. Returns how many were added and how long
    sealing took."""
    from django.utils import timezone

    from audit import ledger
    from audit.models import AuditEvent, PendingSeal

    missing = total - AuditEvent.objects.count()
    if missing <= 0:
        return 0, 0.0
    now = timezone.now()
    batch = 5000
    for offset in range(0, missing, batch):
        rows = []
        for n in range(offset, min(offset + batch, missing)):
            values = {
                "occurred_at": now - timedelta(microseconds=7 * (missing - n)),
                "event_code": "",
                "outcome": "success",
                "actor_user_id": None,
                "actor_label": "bench filler",
                "actor_role": "system",
                "actor_ip": None,
                "api_token": "",
                "dataset_ref": "",
                "legal_basis": "",
                "consent_record_ids": [n % 97, n % 89],
                **_event_fields(9, n),
            }
            text = ledger.canonical_text(values)
            rows.append(AuditEvent(digest=ledger.text_digest(text), canonical=text, **values))
        created = AuditEvent.objects.bulk_create(rows)
        if created[0].pk is None:
            raise RuntimeError("this database cannot return keys from a bulk insert "
                               "(SQLite older than 3.35)")
        PendingSeal.objects.bulk_create([PendingSeal(event_id=e.pk, digest=e.digest)
                                        for e in created])
    start = time.perf_counter()
    ledger.seal()
    return missing, time.perf_counter() - start


def verify_rate(*, repeats: int) -> Measurement:
    from audit import ledger

    seconds = []
    checked = 0
    for _ in range(repeats):
        start = time.perf_counter()
        result = ledger.verify()
        seconds.append(time.perf_counter() - start)
        if not result.ok:
            raise RuntimeError(f"the benchmark ledger does not verify: {result.problems}")
        checked = result.checked
    return Measurement("ledger verify()", median_rate(checked, seconds), "events/s",
                       target=TARGET_VERIFY,
                       detail=f"{checked:,} chained events, {spread(checked, seconds)}")


def run(*, writers: int, append_events: int, append_seconds: float, verify_events: int,
        repeats: int) -> list[Measurement]:
    print(f"  timing {append_events:,} appends with {writers} writers (at most "
          f"{append_seconds:.0f} s) ...", file=sys.stderr, flush=True)
    append = append_rate(writers=writers, events=append_events, seconds=append_seconds)
    flush_free = append_rate(writers=writers, events=append_events, seconds=append_seconds,
                             durable=False)
    print(f"  filling the ledger to {verify_events:,} events ...", file=sys.stderr, flush=True)
    added, seal_seconds = fill_chain(verify_events)
    measurements = [append, flush_free]
    latency = _commit_latency()
    if latency:
        measurements.append(latency)
    if added:
        measurements.append(Measurement(
            "ledger seal() of a queue", added / seal_seconds, "events/s",
            detail=f"{added:,} pending events chained in {seal_seconds:.1f} s, one sealer"))
    print("  timing verify() ...", file=sys.stderr, flush=True)
    measurements.append(verify_rate(repeats=repeats))
    return measurements
