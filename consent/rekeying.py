"""Re-encrypting the names on consent records under the newest identifier key
(``manage.py rotate_identifier_keys``; the registry's own rows are in registry/rekeying.py).

Consent records are append-only in the database, so the rewrite lifts that guard for the
table (``guards.updates_lifted``) inside the caller's transaction and restores it before
the transaction ends. Only the ciphertext changes: the values, and so the ledger's digests
of these rows (computed after decryption, consent/vouched.py), stay the same."""

from __future__ import annotations

from django.db import connection

from audit import guards
from consent.models import ConsentRecord

BATCH = 1000
NAMES = ["proxy_name", "witness"]


def records_rekey(*, batch: int = BATCH) -> int:
    """Every consent record's proxy and witness names written back under the first key.
    Must run inside a transaction (the guard is lifted only there); returns the count."""
    table = ConsentRecord._meta.db_table
    count, last = 0, 0
    with guards.updates_lifted(connection, table):
        while True:
            rows = list(ConsentRecord.objects.filter(pk__gt=last).order_by("pk")
                        .only("pk", *NAMES)[:batch])
            if not rows:
                return count
            ConsentRecord.objects.bulk_update(rows, NAMES)
            count += len(rows)
            last = rows[-1].pk
