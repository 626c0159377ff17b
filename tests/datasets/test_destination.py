"""A steward sets or clears where a dataset's versions are sent, on the dataset's page or in
the API, through dataset_destination_set; nobody else can; a name that is not configured
changes nothing. The version page shows each study's delivery, when it is tried again and
when the outbox gave up. Rows written before destinations were vouched for stay verifiable."""

import importlib

import pytest
from django.apps import apps as django_apps
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import TokenScope
from access.roles import Role
from audit import codes, ledger
from audit.models import AuditEvent
from audit.vouching import verify_rows
from datasets.delivery import DELIVERY_REQUESTED, dataset_destination_set
from datasets.models import DatasetDestination, Delivery, VersionStatus
from outbox.models import OutboxMessage
from outbox.services import MAX_ATTEMPTS, outbox_deliver
from tests.clients import api_with_token, sign_in
from tests.conftest import make_user
from tests.datasets.helpers import STEWARD, make_dataset, run_export
from tests.orthanc import free_port

MIGRATION = importlib.import_module("datasets.migrations.0008_destination_vouched")


@pytest.fixture
def destinations(settings):
    """Two destinations where nothing listens: sending to them fails at once."""
    port = free_port()
    settings.CONSENTRY_DESTINATIONS = {
        "research": f"dicom://RESEARCH@127.0.0.1:{port}",
        "ai-lab": f"stow+http://127.0.0.1:{port}/dicom-web"}
    return settings.CONSENTRY_DESTINATIONS


def set_events():
    return AuditEvent.objects.filter(action="dataset.destination_set")


def test_a_steward_sets_and_clears_the_destination_on_the_dataset_page(client, steward,
                                                                      destinations):
    dataset = make_dataset(steward)
    sign_in(client, steward)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert '<option value="ai-lab">ai-lab</option>' in page
    assert '<option value="research">research</option>' in page
    assert "None: versions are only made as a zip to download." in page

    response = client.post(f"/datasets/{dataset.pk}/destination/", {"destination": "research"})
    assert response.status_code == 302 and response.url == f"/datasets/{dataset.pk}/"
    row = DatasetDestination.objects.get(dataset=dataset)
    assert (row.name, row.set_by) == ("research", steward.username)
    page = client.get(response.url).content.decode()
    assert "Versions from now on are sent to research." in page
    assert f"research, set by {steward.username} on" in page
    assert '<option value="research" selected>' in page
    event = set_events().get()
    assert event.actor_label == steward.username and event.details["destination"] == "research"

    response = client.post(f"/datasets/{dataset.pk}/destination/", {"destination": ""})
    assert response.status_code == 302
    assert not DatasetDestination.objects.exists()
    assert "No destination: versions from now on are only made as a zip." in \
        client.get(response.url).content.decode()
    assert [e.details["destination"] for e in set_events().order_by("id")] == ["research", None]
    assert verify_rows() == []


def test_the_destination_form_reads_in_spanish(client, steward, settings):
    settings.CONSENTRY_DESTINATIONS = {}
    dataset = make_dataset(steward)
    sign_in(client, steward)
    page = client.get(f"/datasets/{dataset.pk}/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "Enviar las versiones a un PACS" in page
    assert "No hay ningún destino configurado." in page


@pytest.mark.parametrize("name", ["elsewhere", "research "])
def test_a_name_that_is_not_configured_is_refused_and_changes_nothing(client, steward,
                                                                      destinations, name):
    dataset = make_dataset(steward)
    dataset_destination_set(dataset=dataset, name="ai-lab", actor=STEWARD)
    sign_in(client, steward)
    response = client.post(f"/datasets/{dataset.pk}/destination/", {"destination": name},
                           follow=True)
    assert "Nothing was changed" in response.content.decode()
    assert DatasetDestination.objects.get().name == "ai-lab"
    assert set_events().count() == 1


def test_the_page_says_when_no_destination_is_configured(client, steward, settings):
    settings.CONSENTRY_DESTINATIONS = {}
    dataset = make_dataset(steward)
    sign_in(client, steward)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "No destination is configured." in page and "CONSENTRY_DESTINATIONS" in page
    assert 'name="destination"' not in page  # nothing to choose, nothing to post
    response = client.post(f"/datasets/{dataset.pk}/destination/", {"destination": "research"},
                           follow=True)
    assert "Nothing was changed" in response.content.decode()
    assert not DatasetDestination.objects.exists() and not set_events().exists()


@pytest.mark.parametrize("persona", ["staff", "auditor", "outsider", "privacy-officer"])
def test_other_roles_cannot_set_a_destination(request, client, steward, destinations,
                                              persona):
    dataset = make_dataset(steward)
    user = make_user("olga", Role.PRIVACY_OFFICER) if persona == "privacy-officer" \
        else request.getfixturevalue(persona)
    sign_in(client, user)
    response = client.post(f"/datasets/{dataset.pk}/destination/", {"destination": "research"})
    assert response.status_code == 403
    anonymous = Client().post(f"/datasets/{dataset.pk}/destination/",
                              {"destination": "research"})
    assert anonymous.status_code == 302 and anonymous.url.startswith("/login/")
    assert not DatasetDestination.objects.exists() and not set_events().exists()


def test_the_api_sets_reads_and_clears_the_destination(steward, destinations):
    dataset = make_dataset(steward)
    api = api_with_token(steward, TokenScope.EXPORT)
    url = f"/api/v1/datasets/{dataset.pk}/destination"
    assert api.get(url).json() == {"destination": None, "set_by": None, "set_at": None,
                                   "configured": ["ai-lab", "research"]}
    response = api.put(url, {"destination": "ai-lab"}, format="json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert (answer["destination"], answer["set_by"]) == ("ai-lab", steward.username)
    assert api.get(url).json() == answer
    assert DatasetDestination.objects.get(dataset=dataset).name == "ai-lab"

    assert api.put(url, {"destination": None}, format="json").json()["destination"] is None
    assert not DatasetDestination.objects.exists()
    api.put(url, {"destination": "research"}, format="json")
    response = api.delete(url)
    assert response.status_code == 200 and response.json()["destination"] is None
    assert not DatasetDestination.objects.exists()
    assert [e.details["destination"] for e in set_events().order_by("id")] == [
        "ai-lab", None, "research", None]
    assert verify_rows() == []


@pytest.mark.parametrize("body", [{"destination": "elsewhere"}, {"destination": "x" * 65},
                                  {"destination": 7}, {}])
def test_a_bad_destination_in_the_api_is_a_400_naming_the_field(steward, destinations, body):
    dataset = make_dataset(steward)
    api = api_with_token(steward, TokenScope.EXPORT)
    response = api.put(f"/api/v1/datasets/{dataset.pk}/destination", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "destination"
    assert not DatasetDestination.objects.exists() and not set_events().exists()


def test_without_the_export_scope_or_the_steward_role_the_api_changes_nothing(
        steward, staff, destinations):
    dataset = make_dataset(steward)
    url = f"/api/v1/datasets/{dataset.pk}/destination"
    reader = api_with_token(steward, TokenScope.CONSENT_READ)
    assert reader.get(url).status_code == 403
    assert reader.put(url, {"destination": "research"}, format="json").status_code == 403
    assert reader.delete(url).status_code == 403
    as_staff = APIClient()
    sign_in(as_staff, staff)
    assert as_staff.put(url, {"destination": "research"}, format="json").status_code == 403
    assert APIClient().put(url, {"destination": "research"},
                           format="json").status_code in (401, 403)
    assert api_with_token(steward, TokenScope.EXPORT).put(
        "/api/v1/datasets/999999/destination", {"destination": "research"},
        format="json").status_code == 404
    assert not DatasetDestination.objects.exists() and not set_events().exists()


def test_the_version_page_shows_a_failed_delivery_its_retries_and_when_they_stop(
        client, steward, hospital, destinations, django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, selection={"modality": "CR"})
    dataset_destination_set(dataset=dataset, name="research", actor=STEWARD)
    version = run_export(dataset, django_capture_on_commit_callbacks)
    assert version.status == VersionStatus.COMPLETE
    delivery = Delivery.objects.get(version_study__version=version)  # Ann's chest CR
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "research (127.0.0.1:" in delivery.error
    sign_in(client, steward)
    page = client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "Sent to research, study by study." in page
    assert "Failed (retrying)" in page and delivery.error in page
    assert "the outbox tries again after" in page and f"(attempt 1 of {MAX_ATTEMPTS})" in page

    message = OutboxMessage.objects.get(kind=DELIVERY_REQUESTED)
    while message.status == "pending":  # the sweeper's later tries, without the wait
        OutboxMessage.objects.filter(pk=message.pk).update(lease_until=None)
        outbox_deliver(message_id=message.pk)
        message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", MAX_ATTEMPTS)
    delivery.refresh_from_db()
    assert delivery.status == "gave-up" and delivery.attempts == MAX_ATTEMPTS
    page = client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "Failed (no more retries)" in page and delivery.error in page
    assert f"The outbox gave up after {MAX_ATTEMPTS} attempts" in page
    assert "tries again after" not in page
    assert AuditEvent.objects.filter(action="export.delivery_failed").count() == 1


def test_a_version_made_before_the_destination_was_set_says_it_was_not_sent(
        client, steward, hospital, destinations, django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, selection={"modality": "CR"})
    version = run_export(dataset, django_capture_on_commit_callbacks)
    dataset_destination_set(dataset=dataset, name="research", actor=STEWARD)
    sign_in(client, steward)
    page = client.get(f"/datasets/versions/{version.pk}/").content.decode()
    assert "This version was not sent anywhere" in page and "(research)" in page
    assert not Delivery.objects.exists()


def legacy_destination(dataset, name, set_by="stella"):
    """A destination as dataset_destination_set wrote it before 0008: its event names it
    but vouches for nothing."""
    row = DatasetDestination.objects.create(dataset=dataset, name=name, set_by=set_by,
                                            set_at=timezone.now())
    ledger.record(action="dataset.destination_set", event_code=codes.APPLICATION_ACTIVITY,
                  actor=STEWARD, dataset_ref=dataset.pk, purpose_code=dataset.purpose.code,
                  details={"destination": name, "recipient": dataset.recipient})
    return row


def test_the_migration_vouches_for_destinations_as_their_events_set_them(steward,
                                                                        destinations):
    kept = legacy_destination(make_dataset(steward), "research")
    edited = legacy_destination(make_dataset(steward, name="Knee MR"), "research")
    DatasetDestination.objects.filter(pk=edited.pk).update(name="ai-lab")  # behind the back
    assert len(verify_rows()) == 2  # neither carries a digest yet

    MIGRATION.vouch_existing(django_apps, None)
    assert verify_rows() == [f"dataset destination {edited.pk} has no ledger event: it was "
                             "written behind the application's back"]
    vouched = AuditEvent.objects.get(action="dataset.destination_vouched")
    assert vouched.details["vouch"][0]["id"] == kept.pk
    assert vouched.actor_role == "system"
    # A later change through the service is vouched for as usual.
    dataset_destination_set(dataset=kept.dataset, name="ai-lab", actor=STEWARD)
    assert len(verify_rows()) == 1
