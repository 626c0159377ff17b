import json
import logging
import threading
from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent, ChainLink, PendingSeal
from tests.broker import REDIS_URL, sending_to

ACTOR = Actor(label="tester", role="staff", user_id=None, ip="127.0.0.1")


def write_events(count: int) -> list[AuditEvent]:
    events = [
        ledger.record(action="consent.checked", actor=ACTOR, patient_ref=n, study_uid=f"1.2.{n}",
                      purpose_code="ai-training", details={"n": n, "nested": {"b": 1, "a": [1, 2]}},
                      consent_record_ids=[n, n + 1], reason=f"reason {n} · ünïcode")
        for n in range(1, count + 1)
    ]
    ledger.seal()
    return events


def as_owner(sql: str, params=()) -> None:
    """What a table owner can do behind the application's back: lift the trigger, change
    the table, put the trigger back."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The test's own inserts are still in its transaction; settle their FK checks.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table in ("audit_auditevent", "audit_chainlink"):
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only")
            else:
                cursor.execute(f"DROP TRIGGER {table}_no_update")
                cursor.execute(f"DROP TRIGGER {table}_no_delete")
        cursor.execute(sql, params)
        for table in ("audit_auditevent", "audit_chainlink"):
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {table}_append_only")
        if connection.vendor == "sqlite":
            from audit import guards

            with connection.cursor() as again:
                for table in guards.APPEND_ONLY_TABLES:
                    for statement in guards._sqlite_statements(table):
                        again.execute(statement)


def skip_event_ids(count: int) -> None:
    """Make the next event's id at least ``count`` past the highest one, so ids and chain
    positions differ (a test database starts both at 1, and SQLite's rollback resets its
    counter)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence('audit_auditevent', 'id'), "
                           "nextval(pg_get_serial_sequence('audit_auditevent', 'id')) + %s)",
                           [count])
        else:
            cursor.execute("DELETE FROM sqlite_sequence WHERE name = 'audit_auditevent'")
            cursor.execute("INSERT INTO sqlite_sequence (name, seq) SELECT 'audit_auditevent', "
                           "COALESCE(MAX(id), 0) + %s FROM audit_auditevent", [count])


def test_sealed_events_verify_intact(db):
    events = write_events(5)
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 5
    assert result.pending == 0
    assert list(ChainLink.objects.order_by("position").values_list("event_id", flat=True)) == [
        e.pk for e in events]


def test_unsealed_events_are_reported_as_pending_not_broken(db):
    write_events(2)
    ledger.record(action="consent.checked", actor=ACTOR)
    result = ledger.verify()
    assert result.ok
    assert (result.checked, result.pending) == (2, 1)


def test_events_are_sealed_after_commit_when_celery_runs_inline(
        db, inline_celery, django_capture_on_commit_callbacks):
    """The embedded mode (one process, no broker) seals right after the commit; with a
    broker a worker does it (tests/test_worker.py)."""
    with django_capture_on_commit_callbacks(execute=True):
        ledger.record(action="login.succeeded", actor=ACTOR)
    assert PendingSeal.objects.count() == 0
    assert ChainLink.objects.count() == 1


def test_sealing_that_fails_after_a_commit_raises_nothing_and_logs_why(db, caplog):
    """The writer's event is committed and queued before sealing starts (`seal_quietly`
    runs after the commit, in the embedded mode): a sealer that fails, here on a queue entry
    for an event already chained, must not fail the writer."""
    chained = write_events(1)[0]
    PendingSeal.objects.create(event=chained, digest=chained.digest)
    event = ledger.record(action="consent.checked", actor=ACTOR)
    ledger.seal_quietly()
    assert AuditEvent.objects.filter(pk=event.pk).exists()
    assert PendingSeal.objects.filter(event=event).exists()
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [(
        "audit.ledger", logging.ERROR,
        "ledger sealing failed; it will be retried by the periodic job")]
    assert caplog.records[0].exc_info[0].__name__ == "IntegrityError"


class _Clock:
    """`time.monotonic` for the ledger's wake-up window, moved by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set WORKER_REDIS_URL or REDIS_URL "
                                          "(always runs in CI)")
def test_a_commit_wakes_a_sealer_through_the_broker_once_per_window(monkeypatch, caplog):
    """With a broker, writers do not seal: each commit makes sure one `seal` task is due
    SEAL_DEBOUNCE seconds later, and sends at most one per window (tests/test_worker.py
    has a worker take it)."""
    import redis

    clock = _Clock(1000.0)
    monkeypatch.setattr(ledger, "time", clock)
    monkeypatch.setattr(ledger, "_wake_due", 0.0)
    monkeypatch.setattr(ledger, "SEAL_DEBOUNCE", 30.0)
    broker = redis.Redis.from_url(REDIS_URL)
    with sending_to(REDIS_URL) as queue:
        sent_at = datetime.now(UTC)
        ledger.seal_soon()
        ledger.seal_soon()
        clock.now = 1023.9  # within 0.8 of the window: the wake-up sent is still ahead
        ledger.seal_soon()
        assert broker.llen(queue) == 1
        message = json.loads(broker.lindex(queue, 0))
        assert message["headers"]["task"] == "audit.tasks.seal"
        due = datetime.fromisoformat(message["headers"]["eta"]) - sent_at
        assert timedelta(seconds=29) < due < timedelta(seconds=35)

        clock.now = 1024.0  # the window is over: the next commit sends another
        ledger.seal_soon()
        assert broker.llen(queue) == 2

    # A broker that cannot be reached: the writer is not held up or failed, and the next
    # commit tries again (the periodic job seals meanwhile).
    clock.now = 5000.0
    with sending_to("redis://127.0.0.1:9/0", queue):
        ledger.seal_soon()
    assert caplog.record_tuples == [(
        "audit.ledger", logging.WARNING,
        "could not wake the ledger sealer; the periodic job will seal")]
    assert "Connection refused" in caplog.text  # and why, with the traceback
    with sending_to(REDIS_URL, queue):
        ledger.seal_soon()
        assert broker.llen(queue) == 3
    broker.delete(queue)


def test_rolled_back_event_leaves_no_trace(db):
    with pytest.raises(RuntimeError), transaction.atomic():
        ledger.record(action="consent.recorded", actor=ACTOR)
        raise RuntimeError("the action failed")
    assert AuditEvent.objects.count() == 0
    assert PendingSeal.objects.count() == 0


def test_the_ledger_names_who_acted_a_person_with_their_role_and_token_or_the_system(
        db, django_user_model):
    user = django_user_model.objects.create_user("desk-anna", password="x" * 12)
    by_person = ledger.record(action="consent.checked", actor=Actor.for_user(
        user, role="staff", ip="10.1.2.3", api_token="a1b2c3d4"))
    by_system = ledger.record(action="outbox.swept", actor=Actor.system("outbox sweeper"))
    by_name_only = ledger.record(action="login.succeeded", actor=Actor.for_user(user))

    fields = ("actor_label", "actor_role", "actor_user_id", "actor_ip", "api_token")
    by_person.refresh_from_db()
    by_system.refresh_from_db()
    assert [getattr(by_person, f) for f in fields] == [
        "desk-anna", "staff", user.pk, "10.1.2.3", "a1b2c3d4"]
    assert [getattr(by_system, f) for f in fields] == ["outbox sweeper", "system", None, None, ""]
    by_name_only.refresh_from_db()
    assert [getattr(by_name_only, f) for f in fields] == ["desk-anna", "", user.pk, None, ""]
    assert ledger.verify().ok


def test_update_and_delete_through_the_orm_are_refused(db):
    event = write_events(1)[0]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(reason="rewritten")
    with pytest.raises(ProtectedError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        # Without the chain link in the way, the database itself refuses.
        AuditEvent.objects.filter(pk=event.pk)._raw_delete(connection.alias)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ChainLink.objects.filter(event=event).delete()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ChainLink.objects.filter(event=event).update(chain_hash="0" * 64)
    event.refresh_from_db()
    assert event.reason == "reason 1 · ünïcode"


def test_update_and_delete_through_raw_sql_are_refused(db):
    event = write_events(1)[0]
    for sql in ("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s",
                "DELETE FROM audit_auditevent WHERE id = %s",
                "DELETE FROM audit_chainlink WHERE event_id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
                connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    assert ledger.verify().ok


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="TRUNCATE and replication "
                    "roles exist only on PostgreSQL")
def test_truncate_and_replica_role_are_refused_on_postgresql(db):
    write_events(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # settle the test's own inserts
        cursor.execute("TRUNCATE audit_chainlink")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            connection.cursor() as cursor:
        # A replication role skips ordinary triggers, not ENABLE ALWAYS ones.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE audit_auditevent SET reason = 'x'")
    assert AuditEvent.objects.count() == 1


def test_an_edited_event_is_named(db):
    events = write_events(6)
    as_owner("UPDATE audit_auditevent SET outcome = 'denied' WHERE id = %s", [events[3].pk])
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_event_id == events[3].pk
    assert result.first_bad_position == 4
    with pytest.raises(CommandError, match=f"event {events[3].pk} at chain position 4"):
        call_command("verify_ledger")


def test_an_edited_detail_is_caught(db):
    events = write_events(3)
    as_owner("UPDATE audit_auditevent SET details = %s WHERE id = %s",
             ['{"n": 2, "nested": {"a": [1, 2], "b": 2}}', events[1].pk])
    assert ledger.verify().first_bad_event_id == events[1].pk


def test_a_deleted_event_is_caught(db):
    events = write_events(5)
    as_owner("DELETE FROM audit_chainlink WHERE event_id = %s", [events[2].pk])
    as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_position == 3
    assert "missing" in result.problems[0]


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="on SQLite the foreign key "
                    "cannot be dropped, and the test database checks it at the end of the test")
def test_a_deleted_last_event_whose_link_remains_is_caught(db):
    events = write_events(3)
    # The foreign key would refuse too; the owner can lift that as well.
    as_owner("ALTER TABLE audit_chainlink DROP CONSTRAINT " + _fk_name("audit_chainlink"))
    as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    result = ledger.verify()
    assert result.first_bad_event_id == events[2].pk


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="on SQLite the foreign key "
                    "cannot be dropped, and the test database checks it at the end of the test")
def test_a_deleted_last_event_whose_link_remains_is_named_by_position_and_id(db):
    skip_event_ids(100)
    events = write_events(3)
    assert events[2].pk > 100
    as_owner("ALTER TABLE audit_chainlink DROP CONSTRAINT " + _fk_name("audit_chainlink"))
    as_owner("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (3, events[2].pk)
    assert result.problems == [f"event {events[2].pk} at chain position 3 was deleted"]


def _fk_name(table: str) -> str:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    return next(name for name, c in constraints.items() if c["foreign_key"])


def test_reordered_events_are_caught(db):
    events = write_events(4)
    # Swap the chain positions of events 2 and 3.
    as_owner("UPDATE audit_chainlink SET position = -position WHERE position IN (2, 3)")
    as_owner("UPDATE audit_chainlink SET position = 3 WHERE position = -2")
    as_owner("UPDATE audit_chainlink SET position = 2 WHERE position = -3")
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_position == 2
    assert result.first_bad_event_id == events[2].pk


def test_an_event_inserted_behind_the_application_is_caught(db):
    events = write_events(2)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (occurred_at, action, event_code, outcome, "
            "actor_label, actor_role, api_token, patient_ref, study_uid, dataset_ref, "
            "purpose_code, legal_basis, consent_record_ids, reason, details, correlation_id, "
            "digest) VALUES (%s, 'export.delivered', '', 'success', 'forger', '', '', '', '', "
            "'', '', '', '[]', '', '{}', '', '')", [events[0].occurred_at])
    result = ledger.verify()
    assert not result.ok
    assert "neither the chain nor the sealing queue" in result.problems[0]


def test_each_break_is_described_in_full_for_the_auditor(db):
    """The auditors' dashboard and verify_ledger show these words as they are."""
    events = write_events(5)
    as_owner("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [events[3].pk])
    assert ledger.verify().problems == [
        f"event {events[3].pk} at chain position 4 does not match its hash: it was edited, "
        "reordered or inserted after sealing"]
    as_owner("DELETE FROM audit_chainlink WHERE event_id = %s", [events[1].pk])
    assert ledger.verify().first_bad_event_id == events[2].pk  # the next one there is
    assert ledger.verify().problems == [
        f"chain position 2 is missing (next is 3, event {events[2].pk}): a link or its event "
        "was deleted"]


def test_an_event_outside_the_chain_and_the_queue_is_described_in_full(db):
    write_events(1)
    event = ledger.record(action="consent.checked", actor=ACTOR)
    PendingSeal.objects.filter(event_id=event.pk).delete()  # the queue is not append-only
    result = ledger.verify()
    assert (result.checked, result.pending) == (1, 0)
    assert (result.first_bad_position, result.first_bad_event_id) == (None, event.pk)
    assert result.problems == [
        f"event {event.pk} is in neither the chain nor the sealing queue: it was inserted "
        "behind the application's back or its queue entry was removed"]



def test_an_event_outside_the_chain_is_found_when_a_stale_queue_entry_evens_the_counts(db):
    """A queue entry left for an already chained event makes "events = chained + queued"
    hold although one event is in neither: the counts alone must not vouch for the table."""
    chained = write_events(1)[0]
    event = ledger.record(action="consent.checked", actor=ACTOR)
    PendingSeal.objects.filter(event_id=event.pk).delete()
    PendingSeal.objects.create(event=chained, digest=chained.digest)
    result = ledger.verify()
    assert (result.checked, result.pending) == (1, 1)
    assert (result.first_bad_position, result.first_bad_event_id) == (None, event.pk)
    assert "is in neither the chain nor the sealing queue" in result.problems[0]

def test_an_intact_result_names_the_head_and_counts(db):
    assert ledger.verify() == ledger.VerifyResult()  # an empty ledger is intact
    write_events(3)
    ledger.record(action="consent.checked", actor=ACTOR)
    result = ledger.verify()
    assert (result.ok, result.checked, result.pending, result.checkpoints, result.problems,
            result.first_bad_position, result.first_bad_event_id) == (
        True, 3, 1, 0, [], None, None)
    assert result.head_hash == ChainLink.objects.get(position=3).chain_hash


def test_the_chain_verifies_whatever_the_servers_time_zone(db, settings):
    """SQLite gives stored times back without a zone: they are UTC, not the server's."""
    write_events(3)
    settings.TIME_ZONE = "America/St_Johns"  # not UTC, and not a whole hour from it
    assert ledger.verify().problems == []


def test_a_chain_read_in_chunks_verifies_and_names_an_edit_in_a_later_chunk(
        db, small_verify_chunks):
    """Long chains are read in ranges of positions (in one process except on PostgreSQL)."""
    events = write_events(13)
    assert (ledger.verify().ok, ledger.verify().checked) == (True, 13)
    as_owner("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [events[11].pk])
    assert (ledger.verify().first_bad_position, ledger.verify().checked) == (12, 11)



def test_a_break_in_a_later_chunk_counts_the_links_checked_by_position_not_event_id(
        db, small_verify_chunks):
    """"checked" (stored with each verification run, shown on the dashboard) counts the
    links that held before the break: positions, whatever the events' ids."""
    skip_event_ids(100)
    events = write_events(13)
    assert events[0].pk > 100
    as_owner("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [events[11].pk])
    result = ledger.verify()
    assert (result.checked, result.first_bad_position, result.first_bad_event_id) == (
        11, 12, events[11].pk)


def test_a_whole_range_of_positions_deleted_with_its_events_is_named(db, small_verify_chunks):
    """Links 6 to 10 and their events gone: with 15 links left, read as 1-5, 6-10 and 11-20,
    the second range reads empty, and the walk must go on to the next (which starts at 11,
    not 6) rather than stop as if the chain ended there; the counts of events and links
    agree, so nothing else would notice."""
    events = write_events(20)
    as_owner("DELETE FROM audit_chainlink WHERE position BETWEEN 6 AND 10")
    gone = ", ".join(str(e.pk) for e in events[5:10])
    as_owner(f"DELETE FROM audit_auditevent WHERE id IN ({gone})")
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_position == 6
    assert "chain position 6 is missing" in result.problems[0]

def test_verify_ledger_command_reports_an_intact_ledger(db, capsys):
    write_events(3)
    call_command("verify_ledger")
    assert "Ledger intact: 3 events chained" in capsys.readouterr().out


def test_concurrent_writers_build_one_unbroken_chain(committed_db):
    """Four writers append at once; sealing after each commit keeps one gap-free chain."""
    errors = []

    def writer(number: int) -> None:
        try:
            for n in range(40):
                ledger.record(action="consent.checked", actor=ACTOR,
                              details={"writer": number, "n": n})
        except Exception as exc:  # collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ledger.seal()
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 160
    positions = list(ChainLink.objects.values_list("position", flat=True))
    assert positions == list(range(1, 161))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.dictionaries(st.text(max_size=10), json_values, max_size=5)
       .filter(lambda d: "\\u0000" not in json.dumps(d)),
       reason=st.text(max_size=50).filter(lambda text: "\x00" not in text))
def test_any_json_details_survive_the_database_and_still_verify(db, details, reason):
    """Whatever the database does to JSON on the way back (key order, number forms, Unicode),
    the digest recomputed from the stored row matches the one sealed into the chain."""
    ledger.record(action="consent.checked", actor=ACTOR, details=details, reason=reason)
    ledger.seal()
    result = ledger.verify()
    assert result.ok, result.problems


@pytest.mark.parametrize("bad", [
    {"details": {"x": float("nan")}},
    {"details": {"x": float("inf")}},
    {"details": {"nested": ["ok", "nul\x00"]}},
    {"details": {"nul\x00key": 1}},
    {"reason": "nul\x00"},
])
def test_values_no_database_can_store_are_refused_and_nothing_is_written(db, bad):
    # NUL is refused on every database alike (PostgreSQL cannot store it), in these words.
    words = "Out of range float values" if "x" in bad.get("details", {}) else \
        "^ledger events cannot contain NUL characters$"
    with pytest.raises(ValueError, match=words):
        ledger.record(action="consent.checked", actor=ACTOR, **bad)
    assert AuditEvent.objects.count() == 0


def test_what_an_event_was_not_given_is_stored_empty_and_numbers_as_text(db):
    """The auditor reads each field as recorded: left out is empty (never a placeholder);
    a patient or dataset given as a number is its text; dates and ids in the details are
    stored as their text. All of it is what the digest is of."""
    bare = ledger.record(action="consent.checked", actor=ACTOR)
    full = ledger.record(action="export.delivered", actor=ACTOR, patient_ref=42, dataset_ref=7,
                         details={"on": date(2026, 1, 2),
                                  "id": UUID("12345678-1234-5678-1234-567812345678")})
    ledger.seal()
    fields = ("event_code", "patient_ref", "study_uid", "dataset_ref", "purpose_code",
              "legal_basis", "reason", "correlation_id")
    bare.refresh_from_db()
    stored = dict(zip(ledger.CANONICAL_FIELDS, json.loads(bare.canonical), strict=True))
    for field in fields:
        assert getattr(bare, field) == "" and stored[field] == "", field
    full.refresh_from_db()
    assert (full.patient_ref, full.dataset_ref) == ("42", "7")
    assert full.details == {"on": "2026-01-02", "id": "12345678-1234-5678-1234-567812345678"}
    assert ledger.verify().ok


@pytest.mark.parametrize(("details", "key"), [
    ({1: "a", "1": "b"}, "1"),
    ({True: 1, "true": 2}, "true"),
    ({None: 1, "null": 2}, "null"),
    ({"outer": {2.5: "x", "2.5": "y"}}, "2.5"),
])
def test_details_whose_keys_read_the_same_as_text_are_refused_and_nothing_is_written(
        db, details, key):
    """JSON keys are text: stored, ``1`` and ``"1"`` would be one key and one of the two
    values would be lost without a word. The caller is told, on every database alike."""
    write_events(1)
    with pytest.raises(ValueError, match=(
            "^ledger event details have two keys that read the same as text: "
            f"'{key}'$")):
        ledger.record(action="consent.checked", actor=ACTOR, details=details)
    assert (AuditEvent.objects.count(), PendingSeal.objects.count()) == (1, 0)


def test_details_with_number_and_text_keys_that_differ_are_stored_with_text_keys(db):
    event = ledger.record(action="consent.checked", actor=ACTOR,
                          details={1: "a", "2": "b", None: "c", 2.5: "d", "nested": {3: [1]}})
    ledger.seal()
    event.refresh_from_db()
    assert event.details == {"1": "a", "2": "b", "null": "c", "2.5": "d", "nested": {"3": [1]}}
    assert ledger.verify().ok


@pytest.fixture
def small_verify_chunks(monkeypatch):
    """Chunks of 5 links from 10 links on, so a short chain is read by worker processes."""
    monkeypatch.setattr(ledger, "VERIFY_CHUNK", 5)
    monkeypatch.setattr(ledger, "VERIFY_PARALLEL_FROM", 10)


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_a_chain_read_by_worker_processes_verifies_and_names_an_edit_in_a_later_chunk(
        committed_db, small_verify_chunks):
    events = write_events(23)
    assert ledger._cpus() >= 2, "this machine runs the parallel reading path"
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 23
    as_owner("UPDATE audit_auditevent SET reason = 'nothing to see' WHERE id = %s",
             [events[16].pk])
    result = ledger.verify()
    assert not result.ok
    assert (result.first_bad_position, result.first_bad_event_id) == (17, events[16].pk)
    assert "does not match its hash" in result.problems[0]


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_worker_processes_find_a_link_deleted_in_the_middle(committed_db, small_verify_chunks):
    events = write_events(23)
    as_owner("DELETE FROM audit_chainlink WHERE position = 12")
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_position == 12
    assert result.first_bad_event_id == events[12].pk
    assert "chain position 12 is missing" in result.problems[0]


def test_a_forged_link_far_beyond_the_end_is_named_without_walking_to_it(db):
    write_events(3)
    forged = ledger.record(action="export.delivered", actor=ACTOR)
    as_owner("INSERT INTO audit_chainlink (position, event_id, chain_hash, sealed_at) "
             "VALUES (1000000000, %s, %s, %s)", [forged.pk, "f" * 64, forged.occurred_at])
    result = ledger.verify()
    assert not result.ok
    assert "chain position 4 is missing" in result.problems[0]


def test_a_forged_digest_in_the_sealing_queue_is_sealed_and_then_named(db):
    write_events(1)
    event = ledger.record(action="consent.checked", actor=ACTOR)
    # The queue is no part of the append-only ledger: its digest copy can be changed.
    PendingSeal.objects.filter(event_id=event.pk).update(digest="0" * 64)
    ledger.seal()
    result = ledger.verify()
    assert not result.ok
    assert (result.first_bad_position, result.first_bad_event_id) == (2, event.pk)


def test_the_sealer_chains_from_the_queue_in_event_order(db):
    events = write_events(0) + [ledger.record(action="consent.checked", actor=ACTOR,
                                              details={"n": n}) for n in range(3)]
    assert [p.digest for p in PendingSeal.objects.order_by("event_id")] == [
        e.digest for e in events]
    assert ledger.seal() == 3
    assert list(ChainLink.objects.values_list("event_id", flat=True)) == [e.pk for e in events]


# Processes forked by this process: counted by a hook registered once (os.register_at_fork
# has no way to remove one), so a test can see whether verification started worker processes.
_forks = [0]
_fork_hook = []


def _count_forks() -> None:
    if not _fork_hook:
        import os

        os.register_at_fork(after_in_parent=lambda: _forks.__setitem__(0, _forks[0] + 1))
        _fork_hook.append(True)
    _forks[0] = 0


def _verify_in_child(results) -> None:
    from django.db import connection as child_connection

    try:
        _count_forks()
        outcome = ledger.verify()
        results.put((outcome.ok, outcome.checked, _forks[0]))
    except BaseException as exc:  # reported by the parent
        results.put(repr(exc))
    finally:
        child_connection.close()


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_a_chain_is_read_by_one_worker_process_per_cpu_from_the_parallel_threshold_on(
        committed_db, small_verify_chunks):
    """The other tests of the parallel read would pass as well if it never started a worker
    process. Below VERIFY_PARALLEL_FROM links the chain is read here (starting processes
    would cost more than it saves); from there on, by one process per CPU."""
    assert ledger._cpus() >= 2, "this machine runs the parallel reading path"
    write_events(ledger.VERIFY_PARALLEL_FROM - 1)
    _count_forks()
    result = ledger.verify()
    assert (result.ok, result.checked, _forks[0]) == (True, 9, 0)
    write_events(1)
    _count_forks()
    result = ledger.verify()
    assert (result.ok, result.checked, _forks[0]) == (True, 10, ledger._cpus())


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_a_daemonic_process_reads_in_itself_the_chain_an_ordinary_one_reads_in_workers(
        committed_db, small_verify_chunks):
    """A Celery prefork worker is daemonic and may not start children: there the chain that
    an ordinary process reads with worker processes is read in-process, with the same
    answer."""
    import multiprocessing

    assert ledger._cpus() >= 2, "this machine runs the parallel reading path"
    write_events(12)
    _count_forks()
    result = ledger.verify()
    assert (result.ok, result.checked, _forks[0]) == (True, 12, ledger._cpus())
    connection.close()  # the child must not share this process's socket
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    child = fork.Process(target=_verify_in_child, args=(results,), daemon=True)
    child.start()
    answer = results.get(timeout=60)
    child.join(timeout=60)
    assert answer == (True, 12, 0)


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_workers_are_forked_whatever_the_default_start_method(committed_db,
                                                               small_verify_chunks):
    """Python 3.14 makes forkserver the default start method on Linux (macOS has spawn):
    a worker started that way has no Django set up. Verification forks its workers
    explicitly, so they inherit this process's settings."""
    import multiprocessing

    events = write_events(12)
    as_owner("UPDATE audit_auditevent SET reason = 'x' WHERE id = %s", [events[10].pk])
    default = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method("spawn", force=True)
    try:
        _count_forks()
        result = ledger.verify()
    finally:
        multiprocessing.set_start_method(default, force=True)
    assert (result.first_bad_position, result.first_bad_event_id) == (11, events[10].pk)
    assert _forks[0] == ledger._cpus()


def test_verification_counts_only_the_cpus_this_process_may_run_on(monkeypatch):
    """As many worker processes as CPUs this process may use (a container's or taskset's
    limit), not as the machine has; where the system cannot say (macOS has no affinity),
    the machine's count, and one process when even that is unknown."""
    import os

    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs Linux and a process allowed on two CPUs or more")
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert ledger._cpus() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert ledger._cpus() == len(allowed)
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert ledger._cpus() == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert ledger._cpus() == 1


HOLDS_CHANGED_WARNING = (
    "the ledger's canonical_holds column is missing or changed: every event is verified "
    "from its columns (slow, and a sign the table was altered)")


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="canonical_holds is PostgreSQL's generated column")
def test_a_changed_generated_column_is_logged_for_the_operator(db, caplog):
    """Verification no longer relies on the column, and says so in the log: a sign that
    someone altered the table."""
    write_events(2)
    with caplog.at_level(logging.WARNING, logger="audit.ledger"):
        assert ledger.verify().ok
        assert caplog.record_tuples == []
        as_owner("ALTER TABLE audit_auditevent ALTER COLUMN canonical_holds DROP EXPRESSION")
        assert ledger.verify().ok
    assert caplog.record_tuples == [("audit.ledger", logging.WARNING, HOLDS_CHANGED_WARNING)]


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="canonical_holds is PostgreSQL's generated column")
def test_without_the_generated_column_a_changed_stored_text_or_digest_is_still_named(db):
    """Checked from their columns, intact events verify, and a stored text or digest that
    no longer says what the columns say is named (the chain itself still holds)."""
    events = write_events(4)
    as_owner("ALTER TABLE audit_auditevent ALTER COLUMN canonical_holds DROP EXPRESSION")
    assert ledger.verify().ok
    as_owner("UPDATE audit_auditevent SET digest = %s WHERE id = %s", ["0" * 64, events[2].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (3, events[2].pk)
    assert "its stored canonical text or digest differs" in result.problems[0]
    as_owner("UPDATE audit_auditevent SET canonical = replace(canonical, 'reason', 'excuse') "
             "WHERE id = %s", [events[1].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (2, events[1].pk)
    assert "its stored canonical text or digest differs" in result.problems[0]


def test_the_events_record_returns_are_the_rows_as_stored(db):
    """A caller holds the event `record` returns (its id, digest and stored text): on every
    database it is the row as written, not a copy missing what the database was given."""
    events = [ledger.record(action="consent.checked", actor=ACTOR, patient_ref=7,
                            details={"b": [1.0, 2], "a": "ü"}, consent_record_ids=[3]),
              *ledger.record_drafts([ledger.event_draft(action="export.delivered", actor=ACTOR,
                                                        reason=f"r{n}") for n in range(2)])]
    fields = (*ledger.CANONICAL_FIELDS, "canonical", "digest")
    for event in events:
        stored = AuditEvent.objects.get(pk=event.pk)
        assert [getattr(event, f) for f in fields] == [getattr(stored, f) for f in fields]
        # Saved, and to this database, as Django's forms and related managers ask.
        assert not event._state.adding and event._state.db == connection.alias


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the one-statement insert is PostgreSQL's")
def test_on_postgresql_one_statement_writes_a_batch_of_events_and_their_queue_entries(db):
    """The writer's cost is what limits the append rate: in a transaction, one INSERT
    writes every event of a batch and its queue entry."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        events = ledger.record_drafts([
            ledger.event_draft(action="consent.checked", actor=ACTOR, details={"n": n})
            for n in range(3)])
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"].upper()]
    assert len(inserts) == 1
    assert sorted(PendingSeal.objects.values_list("event_id", flat=True)) == [
        e.pk for e in events]


def test_an_event_is_sealed_after_a_commit_that_queued_other_work_first(
        db, inline_celery, django_capture_on_commit_callbacks):
    """A service that queues its e-mail before writing its ledger event: the one wake-up of
    the sealer is still scheduled, and the events are chained after the commit."""
    with django_capture_on_commit_callbacks(execute=True):
        transaction.on_commit(lambda: None)
        ledger.record(action="consent.recorded", actor=ACTOR)
        ledger.record(action="consent.checked", actor=ACTOR)
    assert (PendingSeal.objects.count(), ChainLink.objects.count()) == (0, 2)


def test_an_event_recorded_while_the_server_ran_in_another_time_zone_verifies(db, settings):
    """The stored text holds the time in UTC, whatever the server's zone when it was
    written: moving the server to another zone later breaks nothing."""
    settings.TIME_ZONE = "America/St_Johns"
    event = write_events(1)[0]
    event.refresh_from_db()
    assert json.loads(event.canonical)[0] == event.occurred_at.astimezone(UTC).isoformat(
        timespec="microseconds")
    settings.TIME_ZONE = "UTC"
    assert ledger.verify().ok


def _release_once_someone_waits(other, waited: list) -> None:
    """Hold the sealers' lock (taken on `other`) until a sealer queues for it here."""
    import time

    for _ in range(300):
        if other.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = "
                "current_database())").fetchone()[0]:
            waited.append(True)
            break
        time.sleep(0.1)
    other.execute("SELECT pg_advisory_unlock(%s)", [ledger.SEAL_LOCK_KEY])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="sealers queue on a "
                    "PostgreSQL advisory lock; SQLite has one writer at a time anyway")
@pytest.mark.parametrize("wait", [{"wait": True}, {}], ids=["wait", "by-default"])
def test_a_sealer_asked_to_wait_seals_the_queue_once_the_one_at_work_is_done(db, wait):
    """The periodic job and the verification run seal with wait=True (as `seal()` does
    by default): they queue behind a sealer at work, then chain what it left."""
    import psycopg

    for n in range(3):
        ledger.record(action="consent.checked", actor=ACTOR, details={"n": n})
    settings_dict = connection.settings_dict
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"] or 5432,
                         user=settings_dict["USER"], password=settings_dict["PASSWORD"],
                         dbname=settings_dict["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ledger.SEAL_LOCK_KEY])
        waited = []
        releaser = threading.Thread(target=_release_once_someone_waits, args=(other, waited))
        releaser.start()
        try:
            sealed = ledger.seal(**wait)
        finally:
            releaser.join()
    assert (waited, sealed, PendingSeal.objects.count()) == ([True], 3, 0)
    assert ledger.verify().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL's plan")
def test_the_sealers_query_reads_the_queue_alone_whatever_the_statistics(db):
    """The pending-events query once switched to a merge join over the whole event index
    when statistics went stale; reading only the queue leaves no such plan to pick."""
    write_events(3)
    ledger.record(action="consent.checked", actor=ACTOR)
    plan = ledger.pending_batch().explain()
    assert "audit_pendingseal" in plan
    assert "audit_auditevent" not in plan


def test_no_drafts_write_nothing(db):
    assert ledger.record_drafts([]) == []
    assert not AuditEvent.objects.exists() and not PendingSeal.objects.exists()


def test_an_empty_ledger_verifies_intact(db):
    result = ledger.verify()
    assert result.ok and (result.checked, result.pending) == (0, 0)
    assert result.head_hash == ledger.GENESIS_HASH


def test_a_queue_longer_than_one_batch_is_sealed_whole_in_order(db, monkeypatch):
    monkeypatch.setattr(ledger, "SEAL_BATCH", 2)
    # Recorded in the test's transaction: nothing seals them before the call below.
    events = [ledger.record(action="consent.checked", actor=ACTOR, details={"n": n})
              for n in range(5)]
    assert PendingSeal.objects.count() == 5
    assert ledger.seal() == 5
    assert not PendingSeal.objects.exists()
    assert list(ChainLink.objects.order_by("position").values_list("event_id", flat=True)) == [
        e.pk for e in events]
    assert ledger.verify().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="sealers queue on a "
                    "PostgreSQL advisory lock; SQLite has one writer at a time anyway")
def test_a_sealer_that_finds_another_at_work_leaves_the_queue_to_it(db):
    import psycopg

    for n in range(3):
        ledger.record(action="consent.checked", actor=ACTOR, details={"n": n})
    settings_dict = connection.settings_dict
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"] or 5432,
                         user=settings_dict["USER"], password=settings_dict["PASSWORD"],
                         dbname=settings_dict["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ledger.SEAL_LOCK_KEY])
        assert ledger.seal(wait=False) == 0
        assert PendingSeal.objects.count() == 3 and not ChainLink.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [ledger.SEAL_LOCK_KEY])
    assert ledger.seal(wait=False) == 3
    assert ledger.verify().ok


@pytest.mark.skipif(connection.vendor != "postgresql", reason="sealers queue on a "
                    "PostgreSQL advisory lock; SQLite has one writer at a time anyway")
def test_sealing_after_a_commit_never_waits_for_a_sealer_at_work(db, caplog):
    """A writer's commit is not held up by a sealer already at work: that one, or the
    periodic job, seals the writer's event."""
    import psycopg

    ledger.record(action="consent.checked", actor=ACTOR)
    with connection.cursor() as cursor:  # a wait would end here in an error, not a hang
        cursor.execute("SET LOCAL lock_timeout = '3s'")
    settings_dict = connection.settings_dict
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"] or 5432,
                         user=settings_dict["USER"], password=settings_dict["PASSWORD"],
                         dbname=settings_dict["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ledger.SEAL_LOCK_KEY])
        ledger.seal_quietly()
        assert PendingSeal.objects.count() == 1 and not ChainLink.objects.exists()
    assert caplog.records == []
