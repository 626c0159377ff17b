"""Signed checkpoints outside the database catch what the chain alone cannot: a rewrite of
the whole table by its owner, or its newest events cut off."""

import json

import pytest
from django.core.management import CommandError, call_command

from audit import checkpoints, ledger
from audit.models import AuditEvent, ChainLink, PendingSeal, VerificationRun
from tests.audit.test_ledger import as_owner, write_events


def test_a_checkpoint_signs_the_head_and_verification_uses_it(db, data_dir):
    events = write_events(4)
    path = checkpoints.checkpoint_write()
    body = json.loads(path.read_text())
    assert (body["position"], body["event_id"]) == (4, events[-1].pk)
    assert body["chain_hash"] == ChainLink.objects.get(position=4).chain_hash
    write_events(2)
    result = ledger.verify()
    assert result.ok and result.checkpoints == 1 and result.checked == 6
    checkpoints.checkpoint_write()  # signing the head itself
    assert ledger.verify().problems == []


def test_cutting_off_the_newest_events_is_caught(db, data_dir):
    events = write_events(5)
    path = checkpoints.checkpoint_write()
    for event in events[3:]:
        as_owner("DELETE FROM audit_chainlink WHERE event_id = %s", [event.pk])
        as_owner("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    result = ledger.verify()
    assert not result.ok
    assert result.problems == [
        f"the chain ends at position 3, but checkpoint {path.name} signed position 5: "
        "events after the end were deleted"]
    assert (result.first_bad_position, result.first_bad_event_id) == (4, events[4].pk)


def test_a_consistent_rewrite_of_the_whole_chain_is_caught(db, data_dir):
    events = write_events(4)
    checkpoints.checkpoint_write()
    # The owner edits an event, fixes its digest, and rebuilds the whole chain.
    target = events[1]
    as_owner("UPDATE audit_auditevent SET outcome = 'denied' WHERE id = %s", [target.pk])
    values = AuditEvent.objects.filter(pk=target.pk).values(*ledger.CANONICAL_FIELDS).get()
    as_owner("UPDATE audit_auditevent SET digest = %s WHERE id = %s",
             [ledger.content_digest(values), target.pk])
    as_owner("DELETE FROM audit_chainlink")
    # Queued again with each event's (fixed) digest, as the sealer reads it from the queue.
    PendingSeal.objects.bulk_create([
        PendingSeal(event_id=pk, digest=digest) for pk, digest in
        AuditEvent.objects.filter(pk__in=[e.pk for e in events]).values_list("pk", "digest")])
    ledger.seal()
    result = ledger.verify()
    assert not result.ok
    # The rebuilt chain is consistent in itself; only the checkpoint at 4 shows the change.
    head = ChainLink.objects.get(position=4)
    assert result.problems[0].startswith(
        f"the chain at position 4 (event {head.event_id}) differs from the signed checkpoint ")
    assert result.problems[0].endswith(": the ledger was rewritten after it was signed")
    assert (result.first_bad_position, result.first_bad_event_id) == (4, head.event_id)


def test_an_edited_checkpoint_file_is_reported(db, data_dir):
    write_events(2)
    path = checkpoints.checkpoint_write()
    body = json.loads(path.read_text())
    body["position"] = 1
    path.write_text(json.dumps(body))
    result = ledger.verify()
    assert not result.ok and "bad signature" in result.problems[0]


def test_a_checkpoint_from_another_key_is_reported(db, data_dir, settings):
    write_events(1)
    checkpoints.checkpoint_write()
    (data_dir / "ledger-signing-key.pem").unlink()  # a new key is made on next use
    result = ledger.verify()
    assert not result.ok and "not signed with this ledger's key" in result.problems[0]


def test_an_empty_ledger_writes_no_checkpoint(db, data_dir):
    assert checkpoints.checkpoint_write() is None


def test_verify_ledger_records_its_run_and_can_sign_a_checkpoint(db, data_dir, capsys):
    write_events(3)
    call_command("verify_ledger", "--checkpoint")
    out = capsys.readouterr().out
    assert "Ledger intact: 3 events chained, checked against 0 signed checkpoints" in out
    assert "Checkpoint written" in out
    run = VerificationRun.objects.get()
    assert run.ok and run.checked == 3 and run.trigger == "command"
    as_owner("UPDATE audit_auditevent SET reason = 'x' WHERE id = (SELECT MIN(id) FROM "
             "audit_auditevent)")
    with pytest.raises(CommandError, match="LEDGER BROKEN"):
        call_command("verify_ledger")
    broken = VerificationRun.objects.order_by("-id").first()
    assert not broken.ok and broken.first_bad_position == 1
    assert broken.first_bad_event_id == AuditEvent.objects.order_by("id").first().pk
    assert "at chain position 1 does not match its hash" in broken.problem


def test_a_verification_run_keeps_what_the_auditors_dashboard_shows(db, data_dir):
    from django.utils import timezone

    from audit.verification import verification_run

    write_events(2)
    checkpoints.checkpoint_write()
    ledger.record(action="consent.checked", actor=ledger.Actor(label="late"))  # not sealed
    before = timezone.now()
    run = verification_run(trigger="schedule")
    run.refresh_from_db()
    assert (run.ok, run.trigger, run.checked, run.pending, run.checkpoints, run.problem,
            run.first_bad_event_id, run.first_bad_position) == (
        True, "schedule", 3, 0, 1, "", None, None)
    assert before <= run.started_at <= run.finished_at <= timezone.now()


def test_a_key_from_settings_is_used(db, data_dir, settings):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    settings.CONSENTRY_LEDGER_SIGNING_KEY = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    write_events(1)
    body = json.loads(checkpoints.checkpoint_write().read_text())
    assert body["public_key"] == checkpoints.public_key_text(key)
    assert not (data_dir / "ledger-signing-key.pem").exists()
