"""Database triggers that make the ledger append-only.

They are installed by a migration and enforced by the database itself, whatever the
application does. On PostgreSQL they are ``ENABLE ALWAYS`` so that a session with
``session_replication_role = replica`` does not skip them, and a statement-level trigger
refuses TRUNCATE. Only a table owner can still disable them, which is why the chain head is
also checkpointed outside the database.
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

# The ledger's tables, which never change once written. (PendingSeal is a queue and is
# emptied.) Other apps guard their own immutable tables with the same triggers.
APPEND_ONLY_TABLES = ("audit_auditevent", "audit_chainlink")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION consentry_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def _pg_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION consentry_refuse_change()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION consentry_refuse_change()",
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only",
        f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_no_truncate",
    ]


def _sqlite_statements(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} BEGIN "
        f"SELECT RAISE(ABORT, '{table} is append-only: {op} is refused'); END"
        for op in ("UPDATE", "DELETE")
    ]


def install(connection: BaseDatabaseWrapper,
            tables: Iterable[str] = APPEND_ONLY_TABLES) -> None:
    """Install (or re-install) the guards; safe to run twice."""
    tables = tuple(tables)
    uninstall(connection, tables)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            for table in tables:
                for statement in _pg_statements(table):
                    cursor.execute(statement)
        elif connection.vendor == "sqlite":
            for table in tables:
                for statement in _sqlite_statements(table):
                    cursor.execute(statement)
        else:
            raise NotImplementedError(f"no ledger guards for {connection.vendor}")


def uninstall(connection: BaseDatabaseWrapper,
              tables: Iterable[str] = APPEND_ONLY_TABLES) -> None:
    with connection.cursor() as cursor:
        for table in tables:
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
                cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")


@contextmanager
def updates_lifted(connection: BaseDatabaseWrapper, table: str) -> Iterator[None]:
    """Let rows of one guarded table be rewritten in place, inside the caller's transaction
    only: for re-encrypting identifiers (a migration, ``rotate_identifier_keys``), never for
    changing what a row says (its ledger digest still has to match).

    The guard is lifted and restored within one savepoint: on PostgreSQL ``DISABLE TRIGGER``
    and back to ``ENABLE ALWAYS`` (plain ``ENABLE`` would let replica sessions skip it); on
    SQLite the UPDATE trigger is dropped and re-created exactly as ``install`` makes it. DDL
    is transactional on both, so an error inside rolls the savepoint back with the trigger
    in place, and no other session ever sees the table unguarded (PostgreSQL's ALTER TABLE
    holds an exclusive lock on it until the commit)."""
    if not connection.in_atomic_block:
        raise RuntimeError("append-only guards are lifted only inside a transaction")
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # PostgreSQL refuses ALTER TABLE while the table has pending (deferred) foreign
            # key checks, e.g. rows inserted earlier in this transaction: settle them now.
            # They stay immediate for the rest of the transaction, which changes nothing
            # for a rewrite that keeps every key.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
        elif connection.vendor == "sqlite":
            cursor.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
        else:
            raise NotImplementedError(f"no ledger guards for {connection.vendor}")
        yield
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only")
        else:
            cursor.execute(_sqlite_statements(table)[0])
