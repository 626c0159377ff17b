"""Rows bound to the ledger: every write of a row that decides anything is an event carrying
the row's digest, and verify_ledger names any row changed, inserted or deleted behind the
application's back. The admin writes through the same services."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection

from access.grants import role_grant, role_revoke
from audit import guards
from audit.ledger import Actor
from audit.models import AuditEvent
from audit.verification import verification_run
from audit.vouching import verify_rows
from consent.governance import guardianship_create, guardianship_end, purpose_update
from consent.models import ConsentForm, ConsentRecord, Guardianship, Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.delivery import dataset_destination_set
from datasets.models import DatasetDestination
from tests.clients import signed_in
from tests.conftest import make_user
from tests.datasets.helpers import make_dataset

ADMIN = Actor(label="ada-admin", role="admin")


def behind_the_back(sql: str, params=()) -> None:
    """What a table owner can do: lift the consent records' triggers, change the table."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # The test's own inserts are still in its transaction; settle their FK checks.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    guards.uninstall(connection, ["consent_consentrecord"])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    guards.install(connection, ["consent_consentrecord"])


def broken() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_ledger")
    return str(failure.value)


@pytest.fixture
def world(patient, other_patient, steward):
    ai = Purpose.objects.get(code="ai-training")
    record = consent_record(patient=patient, purpose=ai, decision="deny", actor=ADMIN,
                            source="paper", form=current_form())
    guardian = make_user("gina-guardian", "patient")
    guardianship = guardianship_create(patient=other_patient, user=guardian,
                                       relationship="parent", actor=ADMIN)
    dataset = make_dataset(steward)
    return {"record": record, "guardianship": guardianship, "dataset": dataset, "ai": ai}


def test_rows_written_through_the_services_verify_intact(world, capsys):
    call_command("verify_ledger")
    assert "every vouched row matches its event" in capsys.readouterr().out
    assert verify_rows() == []


def test_seeded_purposes_and_form_need_no_event_until_changed(db):
    assert not AuditEvent.objects.exists()
    assert Purpose.objects.count() == 5 and ConsentForm.objects.count() == 1
    assert verify_rows() == []


def test_an_edited_consent_record_is_named(world):
    record = world["record"]
    behind_the_back("UPDATE consent_consentrecord SET decision = 'permit' WHERE id = %s",
                    [record.pk])
    event = AuditEvent.objects.get(consent_record_ids=[record.pk])
    assert f"consent record {record.pk} differs from ledger event {event.pk}" in broken()


def test_a_deleted_guardianship_is_named(world):
    guardianship = world["guardianship"]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM consent_guardianship WHERE id = %s", [guardianship.pk])
    assert f"guardianship {guardianship.pk} (ledger event" in broken()
    assert "is gone" in broken()


def test_a_changed_purpose_policy_is_named(world):
    ai = world["ai"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_purpose SET default_policy = 'opt-out' WHERE id = %s",
                       [ai.pk])
    # A seeded purpose that no event vouched for yet: its seed is what it is held to.
    assert f"purpose {ai.pk} has no ledger event" in broken()


def test_a_purpose_changed_through_the_service_then_behind_the_back_is_named(world):
    ai = purpose_update(purpose=world["ai"], actor=ADMIN, default_policy="opt-out")
    assert verify_rows() == []
    with connection.cursor() as cursor:
        cursor.execute("UPDATE consent_purpose SET default_policy = 'opt-in' WHERE id = %s",
                       [ai.pk])
    event = AuditEvent.objects.get(action="purpose.changed")
    assert f"purpose {ai.pk} differs from ledger event {event.pk}" in broken()


def test_a_role_slipped_in_and_a_dataset_edited_are_named(world, outsider):
    outsider.groups.add(Group.objects.get(name="auditor"))  # no service, no event
    dataset = world["dataset"]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE datasets_dataset SET recipient = 'Elsewhere' WHERE id = %s",
                       [dataset.pk])
    message = broken()
    assert "role grant" in message and "has no ledger event" in message
    assert f"dataset {dataset.pk} differs from ledger event" in message
    run = verification_run(trigger="test")
    run.refresh_from_db()
    assert not run.ok and run.first_bad_event_id is None  # the chain itself is intact
    assert run.problem.split("\n") == verify_rows()  # every problem, one a line
    grant, edit = verify_rows()
    assert "role grant" in grant and f"dataset {dataset.pk} differs" in edit


@pytest.fixture
def destinations(settings):
    settings.CONSENTRY_DESTINATIONS = {"research": "dicom://RESEARCH@10.1.2.3:4242",
                                       "ai-lab": "stow+https://lab.example/dicom-web"}


def test_a_dataset_destination_changed_behind_the_back_is_named(world, destinations):
    row = dataset_destination_set(dataset=world["dataset"], name="research", actor=ADMIN)
    assert verify_rows() == []
    with connection.cursor() as cursor:  # versions would go to a PACS nobody chose
        cursor.execute("UPDATE datasets_datasetdestination SET name = 'ai-lab' WHERE id = %s",
                       [row.pk])
    event = AuditEvent.objects.get(action="dataset.destination_set")
    assert event.details["vouch"][0]["table"] == "datasets.datasetdestination"
    assert f"dataset destination {row.pk} differs from ledger event {event.pk}" in broken()


def test_a_destination_slipped_in_or_removed_behind_the_back_is_named(world, destinations,
                                                                       steward):
    kept = dataset_destination_set(dataset=world["dataset"], name="research", actor=ADMIN)
    other = make_dataset(steward, name="Knee MR")
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM datasets_datasetdestination WHERE id = %s", [kept.pk])
    DatasetDestination.objects.create(dataset=other, name="ai-lab", set_by="nobody",
                                      set_at=kept.set_at)  # no service, no event
    message = broken()
    assert f"dataset destination {kept.pk} (ledger event" in message and "is gone" in message
    slipped = DatasetDestination.objects.get(dataset=other)
    assert f"dataset destination {slipped.pk} has no ledger event" in message


def test_destinations_changed_and_cleared_through_the_service_verify(world, destinations):
    dataset = world["dataset"]
    first = dataset_destination_set(dataset=dataset, name="research", actor=ADMIN)
    second = dataset_destination_set(dataset=dataset, name="ai-lab", actor=ADMIN)
    assert second.pk == first.pk and verify_rows() == []
    assert dataset_destination_set(dataset=dataset, name="", actor=ADMIN) is None
    assert not DatasetDestination.objects.exists() and verify_rows() == []
    dataset_destination_set(dataset=dataset, name="", actor=ADMIN)  # nothing to change
    assert [e.details["destination"] for e in AuditEvent.objects.filter(
        action="dataset.destination_set").order_by("id")] == ["research", "ai-lab", None]


def test_a_row_deleted_through_a_service_is_not_missed(world, outsider):
    guardianship_end(guardianship=world["guardianship"], actor=ADMIN)
    role_grant(user=outsider, role="staff", actor=ADMIN)
    role_revoke(user=outsider, role="staff", actor=ADMIN)
    assert verify_rows() == []
    assert AuditEvent.objects.filter(actor_label=ADMIN.label, action__in=[
        "guardianship.ended", "role.granted", "role.revoked"]).count() == 3


@pytest.fixture
def admin_client(db):
    admin = get_user_model().objects.create_superuser("ada", "ada@example.invalid", "pw-ada")
    return admin, signed_in(admin)


def test_a_policy_changed_in_the_admin_is_an_event_naming_the_admin(admin_client):
    admin, client = admin_client
    ai = Purpose.objects.get(code="ai-training")
    response = client.post(f"/admin/consent/purpose/{ai.pk}/change/", {
        "name": ai.name, "description": ai.description, "parent": ai.parent_id,
        "default_policy": "opt-out", "duo_id": "", "position": ai.position})
    assert response.status_code == 302, response.content[:500]
    ai.refresh_from_db()
    assert ai.default_policy == "opt-out"
    event = AuditEvent.objects.get(action="purpose.changed")
    assert event.actor_label == "ada" and event.actor_user_id == admin.pk
    assert event.details["changes"] == {"default_policy": ["opt-in", "opt-out"]}
    assert verify_rows() == []


def test_guardianships_and_forms_in_the_admin_go_through_the_services(admin_client, patient,
                                                                       outsider):
    _, client = admin_client
    added = client.post("/admin/consent/guardianship/add/", {
        "patient": patient.pk, "user": outsider.pk, "relationship": "parent"})
    assert added.status_code == 302, added.content[:500]
    guardianship = Guardianship.objects.get()
    assert AuditEvent.objects.get(action="guardianship.granted").actor_label == "ada"
    published = client.post("/admin/consent/consentform/add/", {
        "code": "imaging-use", "title": "How your scans may be used", "text": "New text."})
    assert published.status_code == 302, published.content[:500]
    assert ConsentForm.objects.get(version=2).text == "New text."
    deleted = client.post(f"/admin/consent/guardianship/{guardianship.pk}/delete/",
                          {"post": "yes"})
    assert deleted.status_code == 302
    assert not Guardianship.objects.exists()
    assert AuditEvent.objects.filter(action__in=["guardianship.ended",
                                                 "consent_form.published"]).count() == 2
    assert verify_rows() == []


def test_roles_changed_on_the_admin_user_page_are_events(admin_client, outsider):
    _, client = admin_client
    staff = Group.objects.get(name="staff")
    response = client.post(f"/admin/auth/user/{outsider.pk}/change/", {
        "username": outsider.username, "first_name": "", "last_name": "",
        "email": outsider.email, "is_active": "on", "groups": [staff.pk],
        "last_login_0": "", "last_login_1": "", "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00"})
    assert response.status_code == 302, response.content[:2000]
    assert list(outsider.groups.values_list("name", flat=True)) == ["staff"]
    event = AuditEvent.objects.get(action="role.granted")
    assert event.actor_label == "ada" and event.details["role"] == "staff"
    assert verify_rows() == []


def test_consent_records_written_by_the_services_carry_their_digest(world):
    event = AuditEvent.objects.get(consent_record_ids=[world["record"].pk])
    vouch = event.details["vouch"][0]
    assert vouch["table"] == "consent.record" and vouch["id"] == world["record"].pk
    assert len(vouch["digest"]) == 64
    assert ConsentRecord.objects.count() == 1


def test_a_vouched_table_cannot_be_registered_twice_differently():
    from access.grants import ROLE_GRANT
    from audit.vouching import VouchedTable, register_vouched, vouched_tables

    (grants,) = [t for t in vouched_tables() if t.name == ROLE_GRANT]
    register_vouched(grants)  # the same registration again (a second ready()) is harmless
    with pytest.raises(ValueError, match="already registered"):
        register_vouched(VouchedTable(name=ROLE_GRANT, label="something else",
                                      model=grants.model, canonical=grants.canonical))
    assert [t for t in vouched_tables() if t.name == ROLE_GRANT] == [grants]


def test_a_deletion_is_vouched_only_for_a_registered_table():
    from audit.vouching import unvouch

    with pytest.raises(LookupError, match="no vouched table"):
        unvouch(table="no.such_table", row_id=1)


def test_malformed_vouches_in_an_event_neither_vouch_nor_break_verification(world):
    from audit import ledger
    from consent.vouched import RECORD

    record = world["record"]
    ledger.record(action="test.odd_details", actor=ADMIN, details={"vouch": [
        "not a vouch", {"table": RECORD, "id": record.pk}]})
    assert verify_rows() == []
    # A malformed item does not stand in for a row's event either: an edit is still named.
    behind_the_back("UPDATE consent_consentrecord SET decision = 'permit' WHERE id = %s",
                    [record.pk])
    assert any(f" {record.pk} differs from ledger event" in p for p in verify_rows())


def test_a_role_revoked_through_the_service_then_put_back_behind_the_back_is_named(
        world, outsider):
    role_grant(user=outsider, role="steward", actor=ADMIN)
    membership = get_user_model().groups.through.objects.get(user=outsider)
    role_revoke(user=outsider, role="steward", actor=ADMIN)
    assert verify_rows() == []
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO auth_user_groups (id, user_id, group_id) VALUES (%s, %s, %s)",
                       [membership.pk, membership.user_id, membership.group_id])
    revoked = AuditEvent.objects.get(action="role.revoked")
    assert verify_rows() == [
        f"role grant {membership.pk} was deleted by ledger event {revoked.pk} but is present: "
        "it was put back behind the application's back"]
