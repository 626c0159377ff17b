"""The ledger: append events, chain them, verify the chain.

Writing is two steps so that concurrent writers never queue on one row:

1. ``record()`` inserts the event (with the sha256 digest of its canonical content) and a
   ``PendingSeal`` row carrying that digest, inside the caller's transaction. No lock is
   taken.
2. After that transaction commits, ``seal_soon()`` makes sure a sealer will run: a debounced
   Celery wake-up when there is a broker, an inline seal in the embedded mode. ``seal()``
   takes a short lock, appends a ``ChainLink`` for every pending event in commit-visible
   order, and empties the queue. One sealer does the work for everybody waiting, so the lock
   is held for a few milliseconds per batch, and never on a writer's path.

``verify()`` reads the chain in position ranges (in parallel processes for long chains),
checks every link against the one before and names the first event whose content, link or
position does not match. An event's digest is one sha256 of its stored canonical text where
PostgreSQL's generated ``canonical_holds`` column says its columns say exactly that text;
otherwise it is recomputed from the columns (events from before that text was stored, a
changed row, SQLite).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Max, QuerySet
from django.utils import timezone

from audit.models import AuditEvent, ChainLink, Outcome, PendingSeal

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
SEAL_BATCH = 5000
# Any fixed 64-bit number: the PostgreSQL advisory lock that serialises sealers.
SEAL_LOCK_KEY = 0x436F6E73656E74  # "Consent"


@dataclass(frozen=True)
class Actor:
    """Who did it, as the ledger will remember them."""

    label: str
    role: str = ""
    user_id: int | None = None
    ip: str | None = None
    api_token: str = ""

    @classmethod
    def system(cls, label: str) -> Actor:
        return cls(label=label, role="system")

    @classmethod
    def for_user(cls, user: Any, *, role: str = "", ip: str | None = None,
                 api_token: str = "") -> Actor:
        return cls(label=user.get_username(), role=role, user_id=user.pk, ip=ip,
                   api_token=api_token)


# The canonical content of an event, in a fixed order. Changing this list or the encoding
# changes every digest: treat it as a file format.
CANONICAL_FIELDS = (
    "occurred_at", "action", "event_code", "outcome", "actor_user_id", "actor_label",
    "actor_role", "actor_ip", "api_token", "patient_ref", "study_uid", "dataset_ref",
    "purpose_code", "legal_basis", "consent_record_ids", "reason", "details",
    "correlation_id",
)


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                                   allow_nan=False)


def canonical_text(values: dict[str, Any] | tuple) -> str:
    """The canonical JSON of an event's content fields: an array in CANONICAL_FIELDS order,
    ``occurred_at`` first as an ISO 8601 UTC time with microseconds. New events store it
    (``AuditEvent.canonical``) next to their columns."""
    if isinstance(values, dict):
        values = tuple(values[name] for name in CANONICAL_FIELDS)
    occurred_at, *rest = values
    rest.insert(0, occurred_at.astimezone(UTC).isoformat(timespec="microseconds"))
    return _CANONICAL_JSON.encode(rest)


def content_digest(values: dict[str, Any] | tuple) -> str:
    """sha256 over ``canonical_text``: the digest the chain seals."""
    return text_digest(canonical_text(values))


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def link_hash(previous: str, event_id: int, digest: str) -> str:
    return hashlib.sha256(f"{previous}:{event_id}:{digest}".encode()).hexdigest()


def _json_safe(value: Any) -> Any:
    """What we hash must be exactly what the database gives back.

    Round-trip through JSON now (so tuples, dates and the like are what they will be when
    read), refuse NaN and infinities (PostgreSQL does), refuse keys that become one key as
    JSON text, and store integral floats as integers: PostgreSQL's jsonb gives ``1e16`` back
    as ``10000000000000000``. (No sorting here: ``canonical_text`` sorts keys itself.)"""
    return _integral_floats_as_ints(
        json.loads(json.dumps(value, default=str, allow_nan=False),
                   object_pairs_hook=_object_without_twin_keys))


def _object_without_twin_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON keys are text, so ``1`` and ``"1"`` (or ``True`` and ``"true"``) are written as
    # the same key and one value would be dropped without a word: refuse the event instead.
    obj: dict[str, Any] = {}
    for key, item in pairs:
        if key in obj:
            raise ValueError(
                f"ledger event details have two keys that read the same as text: {key!r}")
        obj[key] = item
    return obj


def _refuse_nul(value: Any) -> None:
    """PostgreSQL cannot store NUL in text or jsonb; refuse it on every database alike."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("ledger events cannot contain NUL characters")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_nul(key)
            _refuse_nul(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_nul(item)


def _integral_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral_floats_as_ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral_floats_as_ints(v) for v in value]
    return value


def event_draft(
    *,
    action: str,
    actor: Actor,
    outcome: str = Outcome.SUCCESS,
    event_code: str = "",
    patient_ref: str | int = "",
    study_uid: str = "",
    dataset_ref: str | int = "",
    purpose_code: str = "",
    legal_basis: str = "",
    consent_record_ids: list[int] | None = None,
    reason: str = "",
    details: dict[str, Any] | None = None,
    correlation_id: str = "",
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The canonical field values of one event, checked; ``record_drafts`` writes them."""
    values = {
        "occurred_at": occurred_at or timezone.now(),
        "action": action,
        "event_code": event_code,
        "outcome": str(outcome),
        "actor_user_id": actor.user_id,
        "actor_label": actor.label,
        "actor_role": actor.role,
        # As the column stores it (IPv6 compressed, lower case): the digest must be of what
        # the database holds, or a long-form address would read back as an edit.
        "actor_ip": AuditEvent._meta.get_field("actor_ip").get_prep_value(actor.ip),
        "api_token": actor.api_token,
        "patient_ref": str(patient_ref),
        "study_uid": study_uid,
        "dataset_ref": str(dataset_ref),
        "purpose_code": purpose_code,
        "legal_basis": legal_basis,
        "consent_record_ids": _json_safe(list(consent_record_ids or [])),
        "reason": reason,
        "details": _json_safe(details or {}),
        "correlation_id": correlation_id,
    }
    _refuse_nul(values)
    return values


def record(**fields: Any) -> AuditEvent:
    """Append one event in the caller's transaction; it is chained after commit.

    Takes the keyword arguments of ``event_draft``."""
    return record_drafts([event_draft(**fields)])[0]


def record_drafts(drafts: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append many events in the caller's transaction: the events and their queue entries.

    On PostgreSQL one statement writes both (the writer's cost is what limits the append
    rate); elsewhere two bulk INSERTs."""
    if not drafts:
        return []
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # Outside a transaction the one statement is its own transaction (PostgreSQL runs
        # a statement atomically): one round trip instead of BEGIN, INSERT, COMMIT.
        events = _insert_events_postgresql(drafts)
        seal_soon()
        return events
    with transaction.atomic():
        if connection.vendor == "postgresql":
            events = _insert_events_postgresql(drafts)
        else:
            events = []
            for values in drafts:
                text = canonical_text(values)
                events.append(AuditEvent(digest=text_digest(text), canonical=text, **values))
            events = AuditEvent.objects.bulk_create(events)
            PendingSeal.objects.bulk_create(
                [PendingSeal(event=event, digest=event.digest) for event in events])
        if not _seal_already_scheduled():
            transaction.on_commit(seal_soon)
    return events


_INSERTED_FIELDS = (*CANONICAL_FIELDS, "canonical", "digest")


def _insert_events_postgresql(drafts: list[dict[str, Any]]) -> list[AuditEvent]:
    fields = [AuditEvent._meta.get_field(name) for name in _INSERTED_FIELDS]
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    texts = []
    digests = []
    for values in drafts:
        text = canonical_text(values)
        digest = text_digest(text)
        texts.append(text)
        digests.append(digest)
        params.extend(field.get_db_prep_save(value, connection) for field, value in
                      zip(fields, (*(values[n] for n in CANONICAL_FIELDS), text, digest),
                          strict=True))
    columns = ", ".join(field.column for field in fields)
    # Only column and table names from the models go into the text; values are parameters.
    sql = (f"WITH e AS (INSERT INTO {AuditEvent._meta.db_table} ({columns}) "  # noqa: S608
           f"VALUES {', '.join([row] * len(drafts))} RETURNING id, digest), "
           f"q AS (INSERT INTO {PendingSeal._meta.db_table} (event_id, digest) "
           "SELECT id, digest FROM e) SELECT id FROM e")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        # One statement takes its ids from the sequence in VALUES order, so sorted ids
        # match the drafts even when other writers take ids in between.
        ids = sorted(row[0] for row in cursor.fetchall())
    events = []
    for event_id, digest, text, values in zip(ids, digests, texts, drafts, strict=True):
        event = AuditEvent(id=event_id, digest=digest, canonical=text, **values)
        event._state.adding = False
        event._state.db = connection.alias
        events.append(event)
    return events


def _seal_already_scheduled() -> bool:
    # One wake-up after commit covers every event of the transaction; a batch of 200 events
    # should not queue 200. (run_on_commit holds (savepoints, func, robust) tuples: a Django
    # internal, so the ledger tests would show if it changed.)
    return any(func is seal_soon for _, func, _ in connection.run_on_commit)


# Sealing is a worker's job, not the writer's: after a commit the writer at most sends one
# wake-up per SEAL_DEBOUNCE seconds, due SEAL_DEBOUNCE seconds later. Every event this
# process commits inside that window is committed before the wake-up runs, so that sealer
# sees it; the periodic job (every 30 s) covers a lost message or a skewed worker clock.
SEAL_DEBOUNCE = 0.5
_wake_due = 0.0  # time.monotonic() before which this process's last wake-up is still ahead


def seal_soon() -> None:
    """After a commit: make sure a sealer will run after it.

    With Celery inline (the embedded mode: one process, no broker) it seals here; with a
    broker it wakes a worker at most once per SEAL_DEBOUNCE seconds per process."""
    global _wake_due
    from celery import current_app

    if current_app.conf.task_always_eager:
        seal_quietly()
        return
    now = time.monotonic()
    if now < _wake_due:
        return
    from audit.tasks import seal as seal_task

    try:
        # retry=False: a broker that cannot be reached must not hold up the writer; the
        # periodic job seals what this wake-up would have.
        seal_task.apply_async(countdown=SEAL_DEBOUNCE, retry=False)
    except Exception:  # the events are committed and queued; never fail the caller
        logger.warning("could not wake the ledger sealer; the periodic job will seal",
                       exc_info=True)
        return
    # A little short of the countdown: the wake-up must start after every commit it covers.
    _wake_due = now + SEAL_DEBOUNCE * 0.8


def seal_quietly() -> None:
    """Seal after a commit; a failure here only delays sealing (the beat job retries)."""
    try:
        seal(wait=False)
    except Exception:  # the event is committed and queued; never fail the caller for this
        logger.exception("ledger sealing failed; it will be retried by the periodic job")


def seal(*, wait: bool = True) -> int:
    """Chain every pending event. Returns how many were sealed.

    With ``wait=False`` a sealer that finds another one at work leaves: that one, or the next
    commit, or the periodic job, takes the remaining events."""
    sealed = 0
    while True:
        with transaction.atomic():
            if not _take_seal_lock(wait=wait):
                return sealed
            batch = list(pending_batch())
            if not batch:
                return sealed
            head = ChainLink.objects.order_by("-position").values_list(
                "position", "chain_hash").first()
            position, previous = head or (0, GENESIS_HASH)
            now = timezone.now()
            links = []
            for event_id, digest in batch:
                position += 1
                previous = link_hash(previous, event_id, digest)
                links.append(ChainLink(position=position, event_id=event_id,
                                       chain_hash=previous, sealed_at=now))
            ChainLink.objects.bulk_create(links)
            PendingSeal.objects.filter(event_id__in=[e for e, _ in batch]).delete()
            sealed += len(batch)
        if len(batch) < SEAL_BATCH:
            return sealed


def pending_batch() -> QuerySet:
    """The next events to seal: the queue alone, in key order. No join with the event
    table, so the plan does not depend on that table's size or on how fresh its
    statistics are."""
    return PendingSeal.objects.order_by("event_id").values_list(
        "event_id", "digest")[:SEAL_BATCH]


def _take_seal_lock(*, wait: bool) -> bool:
    if connection.vendor != "postgresql":
        # SQLite transactions here are IMMEDIATE: the write lock is already ours.
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [SEAL_LOCK_KEY])
        return bool(cursor.fetchone()[0])


@dataclass
class VerifyResult:
    checked: int = 0
    pending: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[str] = field(default_factory=list)
    first_bad_event_id: int | None = None
    first_bad_position: int | None = None
    checkpoints: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


# Verification reads the chain with a raw cursor in position ranges: the ORM's per-row model
# machinery cost more than the hashing itself. Every range is checked in itself (each link
# against the stored hash of the link before it, and against any signed checkpoint), and
# large chains by one process per CPU, each on its own connection and range; this process
# only joins the ranges: it checks each range's first link against the previous range's
# last and takes the first problem in position order, which is what a walk of the whole
# chain in one process would name.
VERIFY_CHUNK = 5_000
# Below this many links, starting processes costs more than it saves.
VERIFY_PARALLEL_FROM = 2 * VERIFY_CHUNK


def _columns_sql() -> str:
    return ", ".join(f"e.{AuditEvent._meta.get_field(name).column}"
                     for name in CANONICAL_FIELDS)


def _links_sql() -> str:
    # Only column and table names from the models go into the text; values are parameters.
    return (f"SELECT l.position, l.event_id, l.chain_hash, e.digest, e.canonical, "  # noqa: S608
            f"{_columns_sql()} "
            f"FROM {ChainLink._meta.db_table} l "
            f"JOIN {AuditEvent._meta.db_table} e ON e.id = l.event_id "
            "WHERE l.position BETWEEN %s AND %s ORDER BY l.position")


# On PostgreSQL the event table has a stored generated column, ``canonical_holds`` (audit
# migration 0005): whether the row's columns say exactly what its stored canonical text
# says, computed by the database whenever the row is written or changed, by whoever. Only
# while the column is still generated by exactly this expression (as PostgreSQL prints it
# back) does verification rely on it; otherwise every event is checked from its columns.
_HOLDS_EXPRESSION = (
    "COALESCE((jsonb_path_match((canonical)::jsonb, '((((((((((((($.size() == 18 && $[1] "
    '== $"f1") && $[2] == $"f2") && $[3] == $"f3") && $[5] == $"f5") && $[6] == $"f6") && '
    '$[8] == $"f8") && $[9] == $"f9") && $[10] == $"f10") && $[11] == $"f11") && $[12] == '
    '$"f12") && $[13] == $"f13") && $[15] == $"f15") && $[17] == $"f17")\'::jsonpath, '
    "jsonb_object(ARRAY['f1'::text, (action)::text, 'f2'::text, (event_code)::text, "
    "'f3'::text, (outcome)::text, 'f5'::text, (actor_label)::text, 'f6'::text, "
    "(actor_role)::text, 'f8'::text, (api_token)::text, 'f9'::text, (patient_ref)::text, "
    "'f10'::text, (study_uid)::text, 'f11'::text, (dataset_ref)::text, 'f12'::text, "
    "(purpose_code)::text, 'f13'::text, (legal_basis)::text, 'f15'::text, reason, "
    "'f17'::text, (correlation_id)::text])) AND (NOT (actor_user_id IS DISTINCT FROM "
    '(((canonical)::jsonb ->> 4))::integer)) AND (NOT (actor_ip IS DISTINCT FROM '
    '(((canonical)::jsonb ->> 7))::inet)) AND ((consent_record_ids)::text = '
    '(((canonical)::jsonb -> 14))::text) AND ((details)::text = (((canonical)::jsonb -> '
    '16))::text)), false)'
)


def _holds_column_intact() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
            "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = %s::regclass AND a.attname = 'canonical_holds' "
            "AND NOT a.attisdropped", [AuditEvent._meta.db_table])
        row = cursor.fetchone()
    if row == ("s", _HOLDS_EXPRESSION):
        return True
    logger.warning("the ledger's canonical_holds column is missing or changed: every event "
                   "is verified from its columns (slow, and a sign the table was altered)")
    return False


def _pg_links_sql() -> str:
    # The stored text comes back only where the database says the columns still say what
    # it says (occurred_at, whose formatting cannot be part of a generated column, is
    # compared here: the text begins with it); elsewhere NULL, and that event is read again
    # in full and checked from its columns.
    occurred_at = AuditEvent._meta.get_field("occurred_at").column
    return (f"SELECT l.position, l.event_id, l.chain_hash, e.digest, "  # noqa: S608
            "CASE WHEN e.canonical_holds AND substr(e.canonical, 3, 32) = "
            f"to_char(e.{occurred_at} AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"') THEN e.canonical END "
            f"FROM {ChainLink._meta.db_table} l "
            f"JOIN {AuditEvent._meta.db_table} e ON e.id = l.event_id "
            "WHERE l.position BETWEEN %s AND %s ORDER BY l.position")


def _pg_events_sql() -> str:
    return (f"SELECT e.id, e.canonical, {_columns_sql()} "  # noqa: S608
            f"FROM {AuditEvent._meta.db_table} e WHERE e.id = ANY(%s)")


_JSON_COLUMNS = tuple(CANONICAL_FIELDS.index(name) for name in ("consent_record_ids", "details"))


def _stored_text(values: tuple) -> str:
    """``canonical_text`` of a raw row: the same values the ORM would give back. From a raw
    cursor JSON arrives as text on both databases (Django has psycopg hand jsonb back as
    text), and SQLite's times as naive UTC datetimes (Django's converters)."""
    values = list(values)
    occurred_at = values[0]
    if occurred_at.tzinfo is None:
        occurred_at = occurred_at.replace(tzinfo=UTC)
    values[0] = occurred_at
    for index in _JSON_COLUMNS:
        values[index] = json.loads(values[index])
    return canonical_text(tuple(values))


def _recomputed(stored_canonical: str | None, values: tuple) -> tuple[str, bool]:
    """The digest of an event's columns, and whether its stored text (if it has one) is
    exactly the text of those columns."""
    text = _stored_text(values)
    return text_digest(text), stored_canonical in (None, text)


def _link_rows(bounds: tuple[int, int], holds_intact: bool
               ) -> list[tuple[int, int, str, str, bool]]:
    """(position, event id, chain hash, content digest, row consistent) for the links in
    ``bounds``. The digest is what the chain must hold; "consistent" says that the row's
    stored text and digest columns agree with its content (they are no part of the chain).

    While ``canonical_holds`` is intact, an event whose columns match its stored canonical
    text (that column, and its ``occurred_at``) is hashed from that text (one sha256, no
    decoding); any other event's digest is recomputed from its columns, as every event's is
    on SQLite or without the column."""
    with connection.cursor() as cursor:
        if not holds_intact:
            return _recomputed_rows(cursor, bounds)
        cursor.execute(_pg_links_sql(), list(bounds))
        rows = cursor.fetchall()
        others = [row[1] for row in rows if row[4] is None]
        recomputed = _recomputed_events(cursor, others) if others else {}
    sha256 = hashlib.sha256
    checked = []
    rewritten = []
    for position, event_id, chain_hash, stored, text in rows:
        if text is None:
            digest, consistent = recomputed[event_id]
        else:
            digest, consistent = sha256(text.encode()).hexdigest(), True
            if digest != stored:
                rewritten.append(len(checked))
        checked.append((position, event_id, chain_hash, digest,
                        consistent and digest == stored))
    if rewritten:
        # A text that says what the columns say but does not hash to the stored digest: the
        # text was rewritten in another JSON form (a space, another key order), the digest
        # was changed, or both text and columns. Only the columns tell which; checked from
        # them, the verdict names what changed, as on SQLite (a rewritten text is not an
        # edited event).
        with connection.cursor() as cursor:
            again = _recomputed_events(cursor, [checked[i][1] for i in rewritten])
        for i in rewritten:
            position, event_id, chain_hash, stored, _ = rows[i]
            digest, consistent = again[event_id]
            checked[i] = (position, event_id, chain_hash, digest,
                          consistent and digest == stored)
    return checked


def _recomputed_events(cursor: Any, event_ids: list[int]) -> dict[int, tuple[str, bool]]:
    """``_recomputed`` for these events, read again in full."""
    cursor.execute(_pg_events_sql(), [event_ids])
    return {row[0]: _recomputed(row[1], row[2:]) for row in cursor.fetchall()}


def _recomputed_rows(cursor: Any, bounds: tuple[int, int]
                     ) -> list[tuple[int, int, str, str, bool]]:
    cursor.execute(_links_sql(), list(bounds))
    rows = []
    for position, event_id, chain_hash, stored, canonical, *values in cursor.fetchall():
        digest, consistent = _recomputed(canonical, tuple(values))
        rows.append((position, event_id, chain_hash, digest, consistent and digest == stored))
    return rows


# A signed checkpoint as the range checks need it: (event id, chain hash, file name).
_Signed = dict[int, tuple[int, str, str]]


@dataclass
class _Stretch:
    """One range of positions, checked in itself. Its first link is checked against the
    link before it by the caller, which alone knows that link."""

    first: tuple[int, int, str, str, bool] | None = None
    checked: int = 0  # links after the first that hold
    last: tuple[int, str] | None = None  # position and chain hash of the last link that holds
    problem: tuple[int | None, int | None, str] | None = None
    # The first event (position, id) whose link holds but whose row is not consistent.
    inconsistent: tuple[int, int] | None = None


def _link_problem(expected: int, previous: str, position: int, event_id: int,
                  chain_hash: str, digest: str) -> tuple[int, int, str] | None:
    if position != expected:
        return (expected, event_id,
                f"chain position {expected} is missing (next is {position}, event "
                f"{event_id}): a link or its event was deleted")
    if link_hash(previous, event_id, digest) != chain_hash:
        return (position, event_id,
                f"event {event_id} at chain position {position} does not match its hash: "
                "it was edited, reordered or inserted after sealing")
    return None


def _checkpoint_problem(signed: _Signed, position: int, event_id: int,
                        chain_hash: str) -> tuple[int, int, str] | None:
    checkpoint = signed.get(position)
    if checkpoint and (checkpoint[1] != chain_hash or checkpoint[0] != event_id):
        return (position, event_id,
                f"the chain at position {position} (event {event_id}) differs from the "
                f"signed checkpoint {checkpoint[2]}: the ledger was rewritten after it was "
                "signed")
    return None


def _check_range(task: tuple[tuple[int, int], _Signed, bool]) -> _Stretch:
    """Module level so a pool process can run it."""
    bounds, signed, holds_intact = task
    rows = _link_rows(bounds, holds_intact)
    stretch = _Stretch(first=rows[0] if rows else None)
    if not rows:
        return stretch
    sha256 = hashlib.sha256
    # The first link is the caller's to check against the link before it.
    previous, expected = rows[0][2], rows[0][0]
    for position, event_id, chain_hash, digest, consistent in rows:
        # link_hash, inlined: this loop runs once per event.
        if position != expected or (
                position != rows[0][0]
                and sha256(f"{previous}:{event_id}:{digest}".encode()).hexdigest()
                != chain_hash):
            stretch.problem = _link_problem(expected, previous, position, event_id,
                                            chain_hash, digest)
            return stretch
        if signed and position in signed:
            stretch.problem = _checkpoint_problem(signed, position, event_id, chain_hash)
            if stretch.problem:
                return stretch
        if not consistent and stretch.inconsistent is None:
            stretch.inconsistent = (position, event_id)
        previous, expected = chain_hash, position + 1
    stretch.checked = len(rows) - 1
    stretch.last = (rows[-1][0], rows[-1][2])
    return stretch


def _stretches(last_position: int, links: int, signed: _Signed, holds_intact: bool
               ) -> Iterator[_Stretch]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Ranges cover positions 1..links (all an intact chain has); the last one reaches to the
    # highest position, so a forged link far beyond the end is read (and named) without
    # making thousands of empty ranges.
    ranges = [[first, first + VERIFY_CHUNK - 1] for first in range(1, links + 1, VERIFY_CHUNK)]
    if ranges:
        ranges[-1][1] = max(ranges[-1][1], last_position)
    signed_positions = sorted(signed)
    tasks = [((first, last), {p: signed[p] for p in signed_positions[
                 bisect.bisect_left(signed_positions, first):
                 bisect.bisect_right(signed_positions, last)]}, holds_intact)
             for first, last in ranges]
    # Other processes see only committed rows, so inside a transaction (a test, or a caller
    # that wrote events it has not committed) everything is read here, on this connection.
    # A Celery prefork worker's process is daemonic, and daemonic processes may not start
    # children: there (the scheduled verification) the chain is read here too.
    if (connection.vendor != "postgresql" or connection.in_atomic_block
            or links < VERIFY_PARALLEL_FROM or _cpus() < 2
            or multiprocessing.current_process().daemon):
        for task in tasks:
            yield _check_range(task)
        return
    # Forked children open their own connections; they must not inherit this one's socket.
    connection.close()
    fork = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=_cpus(), mp_context=fork) as pool:
        yield from pool.map(_check_range, tasks)


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def verify() -> VerifyResult:
    """Walk the whole chain in order; stop at the first break and name it. The chain is
    also held against every signed checkpoint written outside the database."""
    from audit.checkpoints import CheckpointInvalid, checkpoints_load

    result = VerifyResult()
    previous = GENESIS_HASH
    expected_position = 1
    try:
        checkpoints = checkpoints_load()
    except CheckpointInvalid as exc:
        result.problems.append(f"checkpoint problem: {exc}")
        return result
    signed = {c.position: (c.event_id, c.chain_hash, c.path.name) for c in checkpoints}
    result.checkpoints = len(checkpoints)

    def broken(position: int | None, event_id: int | None, message: str) -> VerifyResult:
        result.problems.append(message)
        result.first_bad_position = position
        result.first_bad_event_id = event_id
        return result

    inconsistent = None
    stats = ChainLink.objects.aggregate(last=Max("position"), links=Count("position"))
    holds_intact = _holds_column_intact()
    for stretch in _stretches(stats["last"] or 0, stats["links"], signed, holds_intact):
        if stretch.first is None:
            continue
        position, event_id, chain_hash, digest, _ = stretch.first
        problem = _link_problem(expected_position, previous, position, event_id, chain_hash,
                                digest)
        if problem:
            return broken(*problem)
        if stretch.problem:
            # The links before the problem held (a missing position names the one expected).
            result.checked += stretch.problem[0] - position
            return broken(*stretch.problem)
        result.checked += 1 + stretch.checked
        expected_position, previous = stretch.last[0] + 1, stretch.last[1]
        inconsistent = inconsistent or stretch.inconsistent
    result.head_hash = previous
    beyond = [c for c in checkpoints if c.position > result.checked]
    if beyond:
        return broken(result.checked + 1, beyond[0].event_id,
                      f"the chain ends at position {result.checked}, but checkpoint "
                      f"{beyond[-1].path.name} signed position {beyond[-1].position}: "
                      "events after the end were deleted")
    if inconsistent:
        # The chain holds the digest of what the columns say, so the content is intact; but
        # nothing in the application changes a row, so the table was changed behind its back.
        position, event_id = inconsistent
        return broken(position, event_id,
                      f"event {event_id} at chain position {position}: its stored canonical "
                      "text or digest differs from its content (which the chain still "
                      "holds): the row was changed behind the application's back")

    if stats["links"] != result.checked:
        # A link whose event row has gone: the join above skipped it.
        missing = (ChainLink.objects.exclude(event_id__in=AuditEvent.objects.values("id"))
                   .order_by("position").values_list("position", "event_id").first())
        if missing:
            return broken(missing[0], missing[1],
                          f"event {missing[1]} at chain position {missing[0]} was deleted")

    result.pending = PendingSeal.objects.count()
    if (AuditEvent.objects.count() == result.checked + result.pending
            and not PendingSeal.objects.filter(
                event_id__in=ChainLink.objects.values("event_id")).exists()):
        # Every chained event exists (checked above) and every queued one (a foreign key),
        # none is both: with these counts no event can be outside both. The search below
        # reads the whole table; it is needed only when the counts differ.
        return result
    outside = (AuditEvent.objects.exclude(id__in=ChainLink.objects.values("event_id"))
               .exclude(id__in=PendingSeal.objects.values("event_id"))
               .order_by("id").values_list("id", flat=True).first())
    if outside is not None:
        return broken(None, outside,
                      f"event {outside} is in neither the chain nor the sealing queue: "
                      "it was inserted behind the application's back or its queue entry "
                      "was removed")
    return result
