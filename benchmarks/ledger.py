"""Ledger append rate with concurrent writers, and verification rate over a long chain.

DESIGN.md: append >= 5,000 events/s with 4 writers; verify >= 200,000 events/s.

Append is timed through ``ledger.record()``, exactly as services call it: each event is its
own transaction, and its commit triggers ``seal()``. The clock stops only when every event is
chained (a final ``seal()`` takes what the on-commit sealers left), because an event that is
not chained yet is not yet protected by the hash chain.
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


def append_rate(*, writers: int, events: int, seconds: float) -> Measurement:
    """``events`` records split over ``writers`` threads, each on its own connection.

    Writers also stop after ``seconds``, so a slow database bounds the run time rather than
    stretching it; the rate is the same count over the same clock either way."""
    from django.db import connection

    from audit import ledger
    from audit.models import ChainLink, PendingSeal

    per_writer = events // writers
    appended = [0] * writers
    actor = ledger.Actor.system("bench writer")
    links_before = ChainLink.objects.count()
    errors: list[BaseException] = []
    # All writers connect first, then start together: the timing covers appending, not
    # opening connections or starting threads.
    barrier = threading.Barrier(writers + 1)

    def writer(number: int) -> None:
        try:
            connection.ensure_connection()
            barrier.wait(timeout=60)
            deadline = time.perf_counter() + seconds
            for n in range(per_writer):
                ledger.record(actor=actor, **_event_fields(number, n))
                appended[number] += 1
                if time.perf_counter() > deadline:
                    break
        except BaseException as exc:  # reported by the main thread, which must not hang
            errors.append(exc)
            barrier.abort()
        finally:
            # Django opens one connection per thread; a thread that ends must close its own.
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,), name=f"bench-writer-{i}")
               for i in range(writers)]
    for thread in threads:
        thread.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        # Broken only when a writer failed before starting: its error is raised below.
        barrier.wait(timeout=60)
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    committed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a ledger writer failed: {errors[0]!r}") from errors[0]
    left_over = PendingSeal.objects.count()
    ledger.seal()
    elapsed = time.perf_counter() - start

    total = sum(appended)
    stopped = (f" (the {seconds:.0f} s limit stopped the writers)"
               if total < per_writer * writers else "")
    chained = ChainLink.objects.count() - links_before
    if chained != total:
        raise RuntimeError(f"{total} events appended but {chained} chained")
    return Measurement(
        f"ledger append, {writers} writers", total / elapsed, "events/s", target=TARGET_APPEND,
        detail=f"{total:,} events{stopped}, 1 transaction each, all chained; "
               f"{total / committed:,.0f}/s committed before the final seal, which chained "
               f"{left_over:,}")


def fill_chain(total: int) -> tuple[int, float]:
    """Add events until the ledger holds ``total``, then seal them all.

    The filler rows are bulk-inserted with the digest ``record()`` would give them (through
    ledger.content_digest): appending 50,000 events one transaction at a time would only
    repeat the append benchmark. Returns how many were added and how long sealing took."""
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
            rows.append(AuditEvent(digest=ledger.content_digest(values), **values))
        created = AuditEvent.objects.bulk_create(rows)
        if created[0].pk is None:
            raise RuntimeError("this database cannot return keys from a bulk insert "
                               "(SQLite older than 3.35)")
        PendingSeal.objects.bulk_create([PendingSeal(event_id=e.pk) for e in created])
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
    print(f"  filling the ledger to {verify_events:,} events ...", file=sys.stderr, flush=True)
    added, seal_seconds = fill_chain(verify_events)
    measurements = [append]
    if added:
        measurements.append(Measurement(
            "ledger seal() of a queue", added / seal_seconds, "events/s",
            detail=f"{added:,} pending events chained in {seal_seconds:.1f} s, one sealer"))
    print("  timing verify() ...", file=sys.stderr, flush=True)
    measurements.append(verify_rate(repeats=repeats))
    return measurements
