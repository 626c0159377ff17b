"""Rows the ledger vouches for: the tables that decide anything (consent records, forms,
purposes, guardianships, role grants, datasets).

Each write to such a row goes through its app's service, which records a ledger event in
the same transaction carrying the row's canonical digest (``vouch``); a legitimate deletion
carries ``None`` (``unvouch``). ``verify_rows`` walks every registered table and names any
row whose digest differs from its newest event, any row with no event, and any event whose
row is gone. The chain proves the events were not changed, so a row changed behind the
application's back (triggers lifted, a direct UPDATE) shows as a difference.

The ledger knows none of these models: each app registers its tables (model and canonical
content) in its AppConfig.ready, the way outbox handlers are registered."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db.models import Model

from audit.ledger import _CANONICAL_JSON, _json_safe
from audit.models import AuditEvent

DETAILS_KEY = "vouch"


@dataclass(frozen=True)
class VouchedTable:
    """``canonical(row)`` returns the values that matter, by name; ``baseline`` maps a
    row's ``natural_key`` to the digest the code itself vouches for (rows seeded by a
    migration, which ran before any event could be written)."""

    name: str
    label: str
    model: type[Model]
    canonical: Callable[[Any], dict[str, Any]]
    natural_key: Callable[[Any], str] | None = None
    baseline: Callable[[], dict[str, str]] = field(default=dict)


_tables: dict[str, VouchedTable] = {}


def register_vouched(table: VouchedTable) -> None:
    if table.name in _tables and _tables[table.name] != table:
        raise ValueError(f"vouched table {table.name!r} is already registered")
    _tables[table.name] = table


def vouched_tables() -> list[VouchedTable]:
    return [_tables[name] for name in sorted(_tables)]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical_digest(content: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of a row's content (datetimes as UTC ISO 8601)."""
    plain = _json_safe({key: _plain(value) for key, value in content.items()})
    return hashlib.sha256(_CANONICAL_JSON.encode(plain).encode()).hexdigest()


def row_digest(table: VouchedTable, row: Any) -> str:
    return canonical_digest(table.canonical(row))


def vouch(*, table: str, row: Model) -> dict[str, Any]:
    """The vouch for a row just written, to put in its event's details. The row is read
    back from the database first, so the digest is of what was stored, not of what the
    caller holds (a time zone, a rounded value)."""
    spec = _tables[table]
    stored = spec.model._default_manager.get(pk=row.pk)
    return {"table": table, "id": row.pk, "digest": row_digest(spec, stored)}


def unvouch(*, table: str, row_id: int) -> dict[str, Any]:
    """The vouch for a row deleted through a service."""
    if table not in _tables:
        raise LookupError(f"no vouched table {table!r}")
    return {"table": table, "id": row_id, "digest": None}


def vouched_details(details: dict[str, Any] | None, *vouches: dict[str, Any]) -> dict:
    """``details`` with the vouches added under their key."""
    return {**(details or {}), DETAILS_KEY: list(vouches)}


def _vouches() -> dict[tuple[str, str], tuple[str | None, int]]:
    """(table, row id) -> (digest or None, event id) of the newest event vouching for it.
    Events are read in id order: a row's later write takes its row lock before it writes
    its event, so its event has the higher id."""
    newest: dict[tuple[str, str], tuple[str | None, int]] = {}
    events = (AuditEvent.objects.filter(details__has_key=DETAILS_KEY).order_by("id")
              .values_list("id", "details").iterator(chunk_size=5000))
    for event_id, details in events:
        for item in details.get(DETAILS_KEY) or []:
            if isinstance(item, dict) and {"table", "id", "digest"} <= item.keys():
                newest[(str(item["table"]), str(item["id"]))] = (item["digest"], event_id)
    return newest


def verify_rows() -> list[str]:
    """Problems with the vouched rows, each naming the table, the row and the event."""
    vouches = _vouches()
    problems: list[str] = []
    for table in vouched_tables():
        problems.extend(_check_table(table, vouches))
    return problems


def _check_table(table: VouchedTable,
                 vouches: dict[tuple[str, str], tuple[str | None, int]]) -> Iterator[str]:
    baseline = table.baseline()
    present: set[str] = set()
    for row in table.model._default_manager.order_by("pk").iterator(chunk_size=2000):
        row_id = str(row.pk)
        present.add(row_id)
        digest = row_digest(table, row)
        vouched = vouches.get((table.name, row_id))
        if vouched is None:
            key = table.natural_key(row) if table.natural_key else None
            # A row seeded by a migration, exactly as the code seeds it, needs no event.
            if key is None or baseline.get(key) != digest:
                yield (f"{table.label} {row_id} has no ledger event: it was written behind "
                       "the application's back")
        elif vouched[0] is None:
            yield (f"{table.label} {row_id} was deleted by ledger event {vouched[1]} but is "
                   "present: it was put back behind the application's back")
        elif vouched[0] != digest:
            yield (f"{table.label} {row_id} differs from ledger event {vouched[1]}: it was "
                   "changed behind the application's back")
    for (name, row_id), (digest, event_id) in sorted(vouches.items()):
        if name == table.name and digest is not None and row_id not in present:
            yield (f"{table.label} {row_id} (ledger event {event_id}) is gone: it was "
                   "deleted behind the application's back")
