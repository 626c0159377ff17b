"""Events keep the exact text their digest is of (``AuditEvent.canonical``), so verification
hashes stored text instead of re-encoding every event. Tamper evidence must not weaken: an
edit to any field of such an event is named, and events written before the column existed
(no stored text) are still verified from their columns."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit import ledger
from audit.models import AuditEvent
from tests.audit.test_ledger import ACTOR, as_owner, json_values, write_events


def _row(event: AuditEvent) -> dict:
    return AuditEvent.objects.filter(pk=event.pk).values(
        *ledger.CANONICAL_FIELDS, "canonical", "digest").get()


def test_new_events_keep_the_text_their_digest_is_of(db):
    for event in write_events(3):
        row = _row(event)
        assert row["canonical"] == ledger.canonical_text(row)
        assert ledger.text_digest(row["canonical"]) == row["digest"] == event.digest
        assert json.loads(row["canonical"])[1] == "consent.checked"


def test_a_stored_text_rewritten_in_another_json_form_is_named_as_a_changed_row(db):
    """A space, or the details' keys in another order, changes the stored text but not what
    it says, so PostgreSQL's check of the columns against it still holds; yet it is not the
    text that was sealed. The content (which the chain holds) is intact: the auditor is told
    that the row was changed behind the application's back, on every database, not that
    the event was edited."""
    events = write_events(3)
    as_owner("UPDATE audit_auditevent SET canonical = replace(canonical, "
             "'\",\"consent.checked\",', '\", \"consent.checked\",') WHERE id = %s",
             [events[1].pk])
    assert ", \"consent.checked\"" in _row(events[1])["canonical"]
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (2, events[1].pk)
    assert result.problems[0].startswith(
        f"event {events[1].pk} at chain position 2: its stored canonical text or digest "
        "differs from its content (which the chain still holds)")


def _datetime_param(event: AuditEvent):
    return connection.ops.adapt_datetimefield_value(event.occurred_at + timedelta(microseconds=1))


# Every field of an event: the content columns, the stored text, the stored digest. The
# third event of five is edited; each edit must be named with that event and position.
EDITS = {
    "occurred_at": ("occurred_at = %s", _datetime_param),
    "action": ("action = 'consent.recorded'", None),
    "event_code": ("event_code = '110106'", None),
    "outcome": ("outcome = 'denied'", None),
    "actor_user_id": ("actor_user_id = 7", None),
    "actor_label": ("actor_label = 'someone else'", None),
    "actor_role": ("actor_role = 'admin'", None),
    "actor_ip": ("actor_ip = '10.9.8.7'", None),
    "actor_ip_cleared": ("actor_ip = NULL", None),
    "api_token": ("api_token = 'abc'", None),
    "patient_ref": ("patient_ref = '4'", None),
    "study_uid": ("study_uid = '1.2.4'", None),
    "dataset_ref": ("dataset_ref = '9'", None),
    "purpose_code": ("purpose_code = 'research'", None),
    "legal_basis": ("legal_basis = 'consent'", None),
    "consent_record_ids": ("consent_record_ids = '[3, 5]'", None),
    "details": ("details = '{\"n\": 4, \"nested\": {\"a\": [1, 2], \"b\": 1}}'", None),
    # The same number in another written form is a change too.
    "details_number_form": ("details = '{\"n\": 3, \"nested\": {\"a\": [1, 2], \"b\": 1.0}}'",
                            None),
    "reason": ("reason = 'reason 3 · edited'", None),
    "correlation_id": ("correlation_id = 'other'", None),
    "canonical": ("canonical = replace(canonical, '\"consent.checked\"', "
                  "'\"consent.recorded\"')", None),
    "digest": ("digest = '" + "0" * 64 + "'", None),
    "canonical_and_column_alike": ("outcome = 'denied', canonical = replace(canonical, "
                                   "'\"success\"', '\"denied\"')", None),
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_to_any_field_of_an_event_with_stored_text_is_named(db, edit):
    events = write_events(5)
    target = events[2]
    assert _row(target)["canonical"] is not None
    assignment, param = EDITS[edit]
    as_owner(f"UPDATE audit_auditevent SET {assignment} WHERE id = %s",
             ([param(target)] if param else []) + [target.pk])
    result = ledger.verify()
    assert not result.ok
    assert (result.first_bad_position, result.first_bad_event_id) == (3, target.pk)
    with pytest.raises(CommandError, match=f"event {target.pk} at chain position 3"):
        call_command("verify_ledger")


@pytest.mark.parametrize("edit", ["canonical", "digest"])
def test_a_changed_stored_text_or_digest_is_described_in_full_for_the_auditor(db, edit):
    """The chain still holds the content, so the words say what changed and what did not;
    the dashboard and verify_ledger show them as they are."""
    events = write_events(5)
    target = events[2]
    as_owner(f"UPDATE audit_auditevent SET {EDITS[edit][0]} WHERE id = %s", [target.pk])
    result = ledger.verify()
    assert result.problems == [
        f"event {target.pk} at chain position 3: its stored canonical text or digest differs "
        "from its content (which the chain still holds): the row was changed behind the "
        "application's back"]
    assert (result.first_bad_position, result.first_bad_event_id) == (3, target.pk)


def test_a_stored_text_that_is_not_json_is_refused_or_named(db):
    """PostgreSQL cannot compute ``canonical_holds`` for it, so even the table's owner cannot
    write it; SQLite stores it, and verification names the event."""
    events = write_events(3)
    edit = "UPDATE audit_auditevent SET canonical = 'not json' WHERE id = %s"
    if connection.vendor == "postgresql":
        with pytest.raises(DataError), transaction.atomic():
            as_owner(edit, [events[1].pk])
        assert ledger.verify().ok
        return
    as_owner(edit, [events[1].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (2, events[1].pk)


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="canonical_holds is PostgreSQL's generated column")
@pytest.mark.parametrize("alteration", [
    "ALTER TABLE audit_auditevent ALTER COLUMN canonical_holds DROP EXPRESSION",
    # The same name and type, but a column the owner can set, and sets.
    "ALTER TABLE audit_auditevent DROP COLUMN canonical_holds; ALTER TABLE audit_auditevent "
    "ADD COLUMN canonical_holds boolean GENERATED ALWAYS AS (canonical IS NOT NULL) STORED",
])
def test_an_owner_who_changes_the_generated_column_gains_nothing(db, alteration):
    """Without the column exactly as the migration made it, verification checks every event
    from its columns, and the edit the change was meant to hide is named."""
    events = write_events(4)
    assert ledger._holds_column_intact()
    as_owner(alteration)
    assignment = ("outcome = 'denied'" if "DROP EXPRESSION" not in alteration
                  else "outcome = 'denied', canonical_holds = true")
    as_owner(f"UPDATE audit_auditevent SET {assignment} WHERE id = %s", [events[2].pk])
    assert not ledger._holds_column_intact()
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (3, events[2].pk)


def _as_before_the_column(events: list[AuditEvent]) -> None:
    """Events as they were written before ``canonical`` existed: no stored text."""
    as_owner("UPDATE audit_auditevent SET canonical = NULL WHERE id IN ("
             + ", ".join(str(event.pk) for event in events) + ")")


def test_events_without_stored_text_verify_from_their_columns_and_edits_are_named(db):
    old = write_events(3)
    _as_before_the_column(old)
    new = [ledger.record(action="consent.checked", actor=ACTOR, details={"n": n})
           for n in range(3)]
    ledger.seal()
    assert [_row(e)["canonical"] is None for e in old + new] == [True] * 3 + [False] * 3
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 6
    as_owner("UPDATE audit_auditevent SET reason = 'rewritten' WHERE id = %s", [old[1].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (2, old[1].pk)


def test_removing_the_stored_text_hides_no_edit_of_the_columns(db):
    """Without its text an event is checked from its columns, as the oldest events are: an
    edit made together with removing the text is named all the same."""
    events = write_events(3)
    as_owner("UPDATE audit_auditevent SET canonical = NULL, outcome = 'denied' WHERE id = %s",
             [events[1].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (2, events[1].pk)


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the chain is read by several processes only on PostgreSQL")
def test_worker_processes_name_a_changed_stored_text_in_a_later_chunk(committed_db,
                                                                      monkeypatch):
    monkeypatch.setattr(ledger, "VERIFY_CHUNK", 5)
    monkeypatch.setattr(ledger, "VERIFY_PARALLEL_FROM", 10)
    old = write_events(8)
    _as_before_the_column(old)
    new = write_events(15)
    result = ledger.verify()
    assert result.ok, result.problems
    assert result.checked == 23
    as_owner("UPDATE audit_auditevent SET canonical = replace(canonical, 'reason', 'excuse') "
             "WHERE id = %s", [new[9].pk])
    result = ledger.verify()
    assert (result.first_bad_position, result.first_bad_event_id) == (18, new[9].pk)
    assert "stored canonical text" in result.problems[0]


def _stored_text_used(event: AuditEvent) -> bool:
    """Whether verification hashes this event's stored text (PostgreSQL's check that the
    columns say what the text says held), rather than re-encoding its columns."""
    position = event.link.position
    with connection.cursor() as cursor:
        cursor.execute(ledger._pg_links_sql(), [position, position])
        return cursor.fetchone()[4] is not None


@pytest.mark.skipif(connection.vendor != "postgresql",
                    reason="the check of columns against the stored text runs in PostgreSQL")
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(details=st.dictionaries(st.text(max_size=10), json_values, max_size=5)
       .filter(lambda d: "\\u0000" not in json.dumps(d)),
       reason=st.text(max_size=50).filter(lambda text: "\x00" not in text),
       ip=st.sampled_from([None, "127.0.0.1", "::1", "2001:db8::8:800:200c:417a",
                           "2001:0DB8:0000:0000:0000:0000:0000:0001"]),
       ids=st.lists(st.integers(min_value=0, max_value=2**40), max_size=4),
       microsecond=st.sampled_from([0, 1, 999_999]))
def test_the_stored_text_is_what_verification_hashes_whatever_the_content(
        db, details, reason, ip, ids, microsecond):
    """The database's reading of the text and of the columns agree for any content: the
    fast path is taken, not silently the slow one."""
    actor = ledger.Actor(label="tester · ü", role="staff", user_id=12, ip=ip)
    occurred_at = timezone.now().replace(microsecond=microsecond)
    event = ledger.record(action="consent.checked", actor=actor, details=details,
                          reason=reason, consent_record_ids=ids, occurred_at=occurred_at)
    ledger.seal()
    event.refresh_from_db()
    assert _stored_text_used(event)
    assert ledger.verify().ok
