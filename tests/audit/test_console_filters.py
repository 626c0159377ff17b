"""The ledger's filters forgive what auditors type: actions and purposes from lists (a
family like "consent" included), MRNs in any case, one day as From = Until; disclosures
tell a mistyped MRN from a patient with none; the CSV's legal basis matches the page."""

import csv
import io

import pytest
from django.urls import reverse

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent
from registry.models import Patient
from tests.clients import signed_in as client_for


@pytest.fixture
def ledger_day(db):
    patient = Patient.objects.create(issuer="LOCAL", mrn="MRN-Case-7")
    actor = Actor(label="sam")
    ledger.record(action="consent.recorded", actor=actor, patient_ref=patient.pk,
                  purpose_code="research")
    ledger.record(action="consent.withdrawn", actor=actor, patient_ref=patient.pk,
                  purpose_code="ai-training")
    ledger.record(action="export.included", actor=actor, patient_ref=patient.pk,
                  study_uid="1.2.3.4.5", purpose_code="ai-training",
                  details={"recipient": "Lab"})
    ledger.record(action="login.succeeded", actor=actor)
    return patient


def search(client, **fields):
    client.post(reverse("audit-events"), fields)
    return client.get(reverse("audit-events")).content.decode()


def rows(page: str) -> int:
    return page.split("<tbody>")[1].count("<tr><td><a")


def test_a_family_of_actions_is_chosen_from_the_list(auditor, ledger_day):
    """Reproduction: action "consent" found nothing (exact codes only)."""
    client = client_for(auditor)
    page = client.get(reverse("audit-events")).content.decode()
    assert '<option value="consent.*">consent (all)</option>' in page
    assert '<option value="consent.recorded">' in page
    assert rows(search(client, action="consent.*")) == 2
    assert rows(search(client, action="consent.withdrawn")) == 1


def test_an_action_not_in_the_list_is_refused_plainly(auditor, ledger_day):
    page = client_for(auditor).post(reverse("audit-events"), {"action": "consent"}
                                    ).content.decode()
    assert "Select a valid choice" in page and 'class="errorlist"' in page


def test_purposes_are_chosen_from_the_list(auditor, ledger_day):
    client = client_for(auditor)
    assert '<option value="ai-training">' in client.get(reverse("audit-events")).content.decode()
    assert rows(search(client, purpose="ai-training")) == 2


def test_mrn_matches_whatever_the_case(auditor, ledger_day):
    """Reproduction: MRN matching was case-sensitive."""
    client = client_for(auditor)
    assert rows(search(client, patient_mrn="mrn-case-7")) == 3
    assert rows(search(client, patient_mrn=" MRN-CASE-7 ")) == 3


def test_one_day_as_from_and_until_finds_that_day(auditor, ledger_day):
    """Reproduction: From = Until on one day returned nothing."""
    today = AuditEvent.objects.first().occurred_at.date().isoformat()
    client = client_for(auditor)
    expected = AuditEvent.objects.count()  # all written today, by the fixtures
    page = search(client, since=today, until=today)
    assert expected >= 4 and rows(page) == expected
    assert f'value="{today}"' in page  # the form shows the day as typed


def test_one_day_export_is_allowed(auditor, ledger_day):
    today = AuditEvent.objects.first().occurred_at.date().isoformat()
    client = client_for(auditor)
    expected = AuditEvent.objects.count()
    response = client.get(reverse("audit-export"),
                          {"since": today, "until": today, "format": "csv"})
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(lines) == 1 + expected


def test_a_mistyped_mrn_is_no_such_patient_not_no_disclosures(auditor, ledger_day):
    page = client_for(auditor).post(reverse("audit-disclosures"), {"mrn": "MRN-CASE-8"}
                                    ).content.decode()
    assert "No patient has this MRN" in page
    assert "No disclosures" not in page


def test_disclosures_csv_names_consent_as_the_legal_basis_like_the_page(auditor, ledger_day):
    client = client_for(auditor)
    page = client.post(reverse("audit-disclosures"), {"mrn": "mrn-case-7"}).content.decode()
    assert "<td>consent</td>" in page
    response = client.post(reverse("audit-disclosures"), {"mrn": "mrn-case-7", "format": "csv"})
    table = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["legal_basis"] for r in table] == ["consent"]


@pytest.fixture
def two_datasets(steward, ledger_day):
    from tests.datasets.helpers import make_dataset

    chest = make_dataset(steward, name="Chest AI")
    knee = make_dataset(steward, name="knee study")
    return chest, knee


def test_a_dataset_is_chosen_by_name_from_the_list(auditor, two_datasets):
    """Reproduction: the Dataset filter took a numeric id the auditor had to know."""
    chest, knee = two_datasets
    client = client_for(auditor)
    page = client.get(reverse("audit-events")).content.decode()
    chest_option = f'<option value="{chest.pk}">Chest AI (#{chest.pk})</option>'
    knee_option = f'<option value="{knee.pk}">knee study (#{knee.pk})</option>'
    assert chest_option in page and knee_option in page
    assert page.index(chest_option) < page.index(knee_option)  # by name, any case
    found = search(client, dataset=str(chest.pk))
    assert rows(found) == AuditEvent.objects.filter(dataset_ref=str(chest.pk)).count() >= 1
    assert "knee study" not in found.split("<tbody>")[1]


def test_a_dataset_whose_row_is_gone_is_still_listed_by_number(auditor, ledger_day):
    ledger.record(action="dataset.created", actor=Actor(label="stella"), dataset_ref="991")
    page = client_for(auditor).get(reverse("audit-events")).content.decode()
    assert '<option value="991">Dataset #991</option>' in page


@pytest.mark.parametrize("typed", ["999999", "Chest AI", "1 OR 1=1"])
def test_a_dataset_not_in_the_list_is_refused_plainly_and_nothing_is_searched(
        auditor, two_datasets, typed):
    client = client_for(auditor)
    page = client.post(reverse("audit-events"), {"dataset": typed}).content.decode()
    assert "No event mentions this dataset. Choose one from the list." in page
    assert 'class="errorlist"' in page
    # The last good search (none: all events) is what the page lists, not an empty result.
    assert rows(client.get(reverse("audit-events")).content.decode()) == \
        AuditEvent.objects.count()


def test_an_events_page_names_its_dataset(auditor, two_datasets):
    chest, _ = two_datasets
    event = AuditEvent.objects.filter(dataset_ref=str(chest.pk)).first()
    page = client_for(auditor).get(reverse("audit-event", args=[event.pk])).content.decode()
    assert f"<dt>Dataset</dt><dd>Chest AI (#{chest.pk})</dd>" in page
