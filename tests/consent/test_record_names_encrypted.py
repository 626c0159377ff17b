"""The names on consent records (the proxy who signed, the witness) are encrypted at rest,
although the table is append-only: the migration and a key rotation lift its guard only for
their own rewrite, the guard refuses a plain UPDATE and DELETE afterwards, and the ledger's
digests of the records (over the decrypted values) still verify. Runs on SQLite and on
PostgreSQL (the guards differ: triggers dropped and re-made, or disabled and re-enabled)."""

from types import SimpleNamespace

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from audit import guards
from audit.ledger import Actor
from audit.models import AuditEvent
from consent.models import ConsentRecord, Purpose
from consent.selectors import current_form
from consent.services import consent_record
from tests.clients import signed_in as client_for

MIGRATION = __import__("consent.migrations.0006_record_names_encrypted",
                       fromlist=["encrypt_names"])
TABLE = "consent_consentrecord"
STAFF = Actor(label="staff", role="staff")
PROXY, WITNESS = "Robin Liddell", "Jo Doe-Registrar"


@pytest.fixture
def signed(patient):
    """A verbal choice made by the patient's mother, witnessed."""
    return consent_record(patient=patient, purpose=Purpose.objects.get(code="ai-training"),
                          decision="deny", actor=STAFF, source="verbal", form=current_form(),
                          proxy_name=PROXY, proxy_relationship="mother", witness=WITNESS)


def raw_names(pk: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT proxy_name, witness FROM {TABLE} WHERE id = %s", [pk])
        return cursor.fetchone()


def raw_dump(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table}")
        return repr(cursor.fetchall()).casefold()


def ledger_verifies(capsys) -> bool:
    call_command("verify_ledger")
    return "Ledger intact" in capsys.readouterr().out


def assert_guarded(pk: int) -> None:
    """A plain UPDATE and DELETE are refused by the database, and the row is unchanged."""
    before = raw_names(pk)
    with (pytest.raises(DatabaseError, match="append-only"), transaction.atomic(),
          connection.cursor() as cursor):
        cursor.execute(f"UPDATE {TABLE} SET decision = 'permit', witness = 'x' "
                       "WHERE id = %s", [pk])
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        ConsentRecord.objects.filter(pk=pk).delete()
    assert raw_names(pk) == before
    assert ConsentRecord.objects.get(pk=pk).decision == "deny"
    if connection.vendor == "postgresql":
        # Back to ENABLE ALWAYS, not plain ENABLE: a replica-mode session is refused too.
        with connection.cursor() as cursor:
            cursor.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = "
                           f"'{TABLE}'::regclass AND NOT tgisinternal ORDER BY tgname")
            assert cursor.fetchall() == [(f"{TABLE}_append_only", "A"),
                                         (f"{TABLE}_no_truncate", "A")]


def plant_plaintext(pk: int) -> None:
    """The row as it was before 0006: the names in clear (written with the guard lifted,
    as only a migration could)."""
    with guards.updates_lifted(connection, TABLE), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET proxy_name = %s, witness = %s WHERE id = %s",
                       [PROXY, WITNESS, pk])


def test_a_raw_read_shows_no_proxy_or_witness_name(signed):
    proxy, witness = raw_names(signed.pk)
    key = Fernet(settings.CONSENTRY_IDENTIFIER_KEYS[0].encode())
    assert key.decrypt(proxy.encode()).decode() == PROXY
    assert key.decrypt(witness.encode()).decode() == WITNESS
    # Neither the record's table nor the ledger (its event says only that a witness signed)
    # holds either name in clear.
    for table in (TABLE, "audit_auditevent"):
        dump = raw_dump(table)
        for word in ("Robin", "Liddell", "Doe-Registrar"):
            assert word.casefold() not in dump, (table, word)
    event = AuditEvent.objects.get(action="consent.recorded")
    assert event.details["witnessed"] is True and event.details["proxy"] == "mother"
    stored = ConsentRecord.objects.get(pk=signed.pk)
    assert (stored.proxy_name, stored.witness) == (PROXY, WITNESS)


def test_blank_names_read_back_blank(patient):
    made = consent_record(patient=patient, purpose=Purpose.objects.get(code="research"),
                          decision="permit", actor=STAFF, source="paper", form=current_form())
    assert all(value.startswith("gAAAAA") for value in raw_names(made.pk))
    stored = ConsentRecord.objects.get(pk=made.pk)
    assert (stored.proxy_name, stored.witness, stored.by_proxy) == ("", "", False)
    event = AuditEvent.objects.get(consent_record_ids=[made.pk])
    assert event.details["witnessed"] is False


def test_the_desk_and_the_portal_still_show_the_names(staff, patient, signed):
    desk = client_for(staff).get(f"/desk/patients/{patient.pk}/").content.decode()
    assert f"signed by {PROXY} (mother)" in desk and f"witness {WITNESS}" in desk
    history = client_for(patient.user).get(f"/portal/{patient.pk}/history/")
    assert history.status_code == 200
    assert f"by {PROXY} (mother)" in history.content.decode()


def test_the_desk_records_a_witnessed_proxy_choice_encrypted(staff, patient):
    response = client_for(staff).post(f"/desk/patients/{patient.pk}/consent/", {
        "purpose": "education", "decision": "deny", "scope_kind": "all", "scope_value": "",
        "source": "verbal", "witness": WITNESS, "form_version": current_form().pk,
        "proxy_name": PROXY, "proxy_relationship": "father", "effective_from": "",
        "expires_at": ""}, follow=True)
    assert response.status_code == 200
    made = ConsentRecord.objects.get()
    assert PROXY not in repr(raw_names(made.pk)) and WITNESS not in repr(raw_names(made.pk))
    assert (made.proxy_name, made.witness) == (PROXY, WITNESS)


def test_the_names_cannot_be_compared_in_sql_by_mistake(signed):
    from django.core.exceptions import FieldError

    with pytest.raises(FieldError, match="encrypted"):
        ConsentRecord.objects.filter(witness=WITNESS).exists()


def test_the_guard_refuses_updates_after_the_migration(signed):
    """The test database was made by the migrations, 0006 included (which, on SQLite,
    re-creates the table): both guards are there."""
    assert_guarded(signed.pk)


def test_the_migration_encrypts_plaintext_names_and_keeps_the_guard_and_ledger(
        signed, capsys):
    plant_plaintext(signed.pk)
    assert raw_names(signed.pk) == (PROXY, WITNESS)
    # A row from before the migration still reads (the field passes plain text through).
    assert ConsentRecord.objects.get(pk=signed.pk).witness == WITNESS

    MIGRATION.encrypt_names(apps, SimpleNamespace(connection=connection))

    proxy, witness = raw_names(signed.pk)
    assert PROXY not in proxy and WITNESS not in witness
    assert ConsentRecord.objects.get(pk=signed.pk).proxy_name == PROXY
    assert_guarded(signed.pk)
    assert ledger_verifies(capsys)


def test_rotation_re_encrypts_the_names_keeps_the_guard_and_the_ledger(signed, capsys):
    old = settings.CONSENTRY_IDENTIFIER_KEYS[0]
    new = Fernet.generate_key().decode()
    with override_settings(CONSENTRY_IDENTIFIER_KEYS=[new, old]):
        call_command("rotate_identifier_keys")
        assert "and 1 consent records" in capsys.readouterr().out
    proxy, witness = raw_names(signed.pk)
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(witness.encode())
    assert Fernet(new.encode()).decrypt(proxy.encode()).decode() == PROXY
    rekeyed = AuditEvent.objects.get(action="identifiers.rekeyed")
    assert rekeyed.details["consent_records"] == 1
    with override_settings(CONSENTRY_IDENTIFIER_KEYS=[new]):
        stored = ConsentRecord.objects.get(pk=signed.pk)
        assert (stored.proxy_name, stored.witness) == (PROXY, WITNESS)
        assert_guarded(signed.pk)
        assert ledger_verifies(capsys)


def test_a_record_changed_behind_the_guard_is_still_caught(signed):
    """verify_ledger compares decrypted values: a name swapped for another (encrypted, so
    it looks like any other token) is named, as a changed decision is."""
    forged = ConsentRecord._meta.get_field("witness").get_prep_value("Someone Else")
    with guards.updates_lifted(connection, TABLE), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET witness = %s WHERE id = %s", [forged, signed.pk])
    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger")
    assert f"consent record {signed.pk} differs from ledger event" in str(failure.value)


def test_an_error_while_lifted_rolls_back_with_the_guard_in_place(signed):
    with (pytest.raises(ZeroDivisionError), transaction.atomic(),
          guards.updates_lifted(connection, TABLE), connection.cursor() as cursor):
        cursor.execute(f"UPDATE {TABLE} SET decision = 'permit' WHERE id = %s", [signed.pk])
        raise ZeroDivisionError
    assert_guarded(signed.pk)


def test_the_guard_is_lifted_only_inside_a_transaction(db):
    """Outside any transaction the lift would last past the statement: refused."""
    atomic = connection.in_atomic_block
    connection.in_atomic_block = False
    try:
        with (pytest.raises(RuntimeError, match="inside a transaction"),
              guards.updates_lifted(connection, TABLE)):
            pass
    finally:
        connection.in_atomic_block = atomic
