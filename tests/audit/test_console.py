"""The auditor console: read-only, every filter, keyset pagination, tamper shown in red."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent
from tests.audit.test_ledger import as_owner
from tests.clients import signed_in as client_for
from tests.consent.factories import make_patient

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def seeded(db):
    alice, bob = make_patient("MRN-A"), make_patient("MRN-B")
    staff = Actor(label="sam", role="staff")
    system = Actor(label="pacs", role="system", api_token="abc123")
    rows = [
        ("consent.recorded", staff, "success", alice, "1.2.1", "", "research", 0),
        ("consent.checked", system, "success", alice, "1.2.1", "", "ai-training", 1),
        ("consent.checked", system, "denied", bob, "1.2.2", "", "ai-training", 2),
        ("export.included", staff, "success", bob, "1.2.2", "7", "ai-training", 3),
        ("login.failed", Actor(label="mallory"), "failure", None, "", "", "", 4),
    ]
    events = {}
    for n, (action, actor, outcome, patient, study, dataset, purpose, day) in enumerate(rows):
        events[n] = ledger.record(
            action=action, actor=actor, outcome=outcome,
            patient_ref=patient.pk if patient else "", study_uid=study, dataset_ref=dataset,
            purpose_code=purpose, occurred_at=T0 + timedelta(days=day))
    ledger.seal()
    return events


def ids_on(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<td><a href="/audit/events/(\d+)/">', page)]


def listed(client, **params):
    """Search as the page does: POST the terms, then read the list they select."""
    searched = client.post(reverse("audit-events"), params)
    assert searched.status_code == 302 and searched["Location"] == reverse("audit-events")
    return ids_on(client.get(reverse("audit-events")).content.decode())


@pytest.mark.parametrize(("params", "expected"), [
    ({}, [4, 3, 2, 1, 0]),
    ({"action": "consent.checked"}, [2, 1]),
    ({"outcome": "denied"}, [2]),
    ({"actor": "pacs"}, [2, 1]),
    ({"patient_mrn": "MRN-A"}, [1, 0]),
    ({"study_uid": "1.2.2"}, [3, 2]),
    ({"dataset": "7"}, [3]),
    ({"purpose": "ai-training"}, [3, 2, 1]),
    ({"since": "2026-03-02 00:00", "until": "2026-03-04 00:00"}, [2, 1]),
    ({"purpose": "ai-training", "patient_mrn": "MRN-B", "outcome": "success"}, [3]),
    ({"patient_mrn": "NOBODY"}, []),
])
def test_every_filter_alone_and_combined(auditor, seeded, params, expected):
    # Unfiltered, the list also holds the auditor's own role grant (made first, by the
    # persona fixture, through the service as an admin would).
    granted = [] if params else [AuditEvent.objects.get(action="role.granted").pk]
    assert listed(client_for(auditor), **params) == [seeded[n].pk for n in expected] + granted


def test_pages_are_stable_while_new_events_arrive(auditor, seeded, monkeypatch):
    monkeypatch.setattr("audit.selectors.PAGE_SIZE", 2)
    client = client_for(auditor)
    first = client.get(reverse("audit-events")).content.decode()
    next_link = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    ledger.record(action="login.succeeded", actor=Actor(label="late"))  # arrives meanwhile
    second = client.get(reverse("audit-events") + next_link).content.decode()
    assert ids_on(second) == [seeded[2].pk, seeded[1].pk]


def test_an_event_page_shows_everything_with_its_chain_position(auditor, seeded):
    page = client_for(auditor).get(reverse("audit-event", args=[seeded[1].pk])).content.decode()
    assert "consent.checked" in page and "API token abc123" in page and "MRN-A" in page
    # Position 1 is the auditor's role grant, made first by the persona fixture.
    assert "Chain position</dt><dd>3," in page.replace("\n", "")


def test_a_tampered_ledger_shows_as_broken_naming_the_event(auditor, seeded):
    as_owner("UPDATE audit_auditevent SET outcome = 'success' WHERE id = %s", [seeded[2].pk])
    client = client_for(auditor)
    client.post(reverse("audit-verify"))
    page = client.get(reverse("audit-dashboard")).content.decode()
    assert 'class="integrity broken"' in page
    assert f"First bad event: #{seeded[2].pk}" in page


def test_an_intact_ledger_shows_as_intact(auditor, seeded):
    client = client_for(auditor)
    client.post(reverse("audit-verify"))
    assert "Intact" in client.get(reverse("audit-dashboard")).content.decode()


@pytest.mark.parametrize("persona", ["staff", "steward", "outsider"])
def test_only_auditors_see_the_console(request, persona, seeded):
    client = client_for(request.getfixturevalue(persona))
    for path in [reverse("audit-dashboard"), reverse("audit-events"),
                 reverse("audit-event", args=[seeded[0].pk])]:
        assert client.get(path).status_code == 403
    assert client.post(reverse("audit-verify")).status_code == 403


def test_a_patient_cannot_see_the_console(patient, seeded):
    assert client_for(patient.user).get(reverse("audit-events")).status_code == 403


def test_bad_filters_are_explained(auditor, seeded):
    page = client_for(auditor).post(reverse("audit-events"), {"since": "soon"}).content.decode()
    assert "Enter a date like 2026-03-02" in page and 'value="soon"' in page


def test_a_search_for_a_patient_never_puts_the_mrn_in_a_url(auditor, seeded):
    client = client_for(auditor)
    searched = client.post(reverse("audit-events"), {"patient_mrn": "MRN-A"})
    assert "MRN-A" not in searched["Location"]
    page = client.get(reverse("audit-events")).content.decode()
    assert ids_on(page) == [seeded[1].pk, seeded[0].pk]
    assert "MRN-A" in page  # the patient column names them
    assert not [href for href in re.findall(r'(?:href|action)="([^"]*)"', page) if "MRN" in href]
    shown = ids_on(client.get(reverse("audit-events") + "?clear=1").content.decode())
    assert [pk for pk in shown if pk in {e.pk for e in seeded.values()}] == [
        seeded[n].pk for n in (4, 3, 2, 1, 0)]


@pytest.fixture
def disclosed(db):
    alice = make_patient("MRN-D")
    staff = Actor(label="stella", role="steward")
    first = ledger.record(action="export.included", actor=staff, patient_ref=alice.pk,
                          study_uid="1.2.9", dataset_ref="12", purpose_code="ai-training",
                          details={"recipient": "Acme AI Lab"},
                          occurred_at=T0 + timedelta(days=1))
    ledger.record(action="consent.checked", actor=staff, patient_ref=alice.pk,
                  purpose_code="ai-training", occurred_at=T0)
    return alice, first


def test_the_accounting_of_disclosures_lists_date_recipient_what_and_purpose(auditor,
                                                                            disclosed):
    client = client_for(auditor)
    page = client.post(reverse("audit-disclosures"), {"mrn": "MRN-D"}).content.decode()
    row = page.split("<tbody>")[1].split("</tr>")[0]
    assert "2026-03-02" in row and "Acme AI Lab" in row and "1.2.9" in row
    assert "ai-training" in row
    assert page.count("<tr><td>") == 1  # the consent check is not a disclosure
    csv_body = b"".join(client.post(reverse("audit-disclosures"),
                                    {"mrn": "MRN-D", "format": "csv"}).streaming_content)
    lines = csv_body.decode().splitlines()
    assert lines[0] == "date,recipient,what,purpose,legal_basis,event"
    assert "Acme AI Lab,1.2.9,ai-training" in lines[1]
    printable = client.post(reverse("audit-disclosures"), {"mrn": "MRN-D", "print": "1"})
    assert b'class="print"' in printable.content and b"Acme AI Lab" in printable.content


def test_the_patient_sees_the_same_disclosures(disclosed):
    from consent.selectors import patient_uses

    alice, first = disclosed
    assert list(patient_uses(alice)) == [first]


def test_events_export_as_csv_for_a_time_range(auditor, seeded):
    response = client_for(auditor).get(reverse("audit-export"), {
        "since": "2026-03-02 00:00", "until": "2026-03-04 00:00", "format": "csv"})
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("id,occurred_at,action")
    assert [int(line.split(",")[0]) for line in lines[1:]] == [seeded[1].pk, seeded[2].pk]


def test_events_export_as_fhir_audit_events_that_validate(auditor, seeded):
    from fhir.resources.R4B.auditevent import AuditEvent as FhirAuditEvent

    response = client_for(auditor).get(reverse("audit-export"), {
        "since": "2026-03-01 00:00", "until": "2026-03-10 00:00", "format": "fhir"})
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and len(bundle["entry"]) == 5
    for entry in bundle["entry"]:
        FhirAuditEvent.model_validate(entry["resource"])  # raises if not valid R4
    checked = next(e["resource"] for e in bundle["entry"]
                   if e["resource"]["id"] == str(seeded[2].pk))
    assert checked["outcome"] == "4" and checked["agent"][0]["who"]["identifier"]["value"] == \
        "abc123"


@pytest.mark.parametrize("params", [
    {"since": "2026-03-05 00:00", "until": "2026-03-01 00:00", "format": "csv"},
    {"since": "whenever", "until": "2026-03-01 00:00", "format": "csv"},
    {"since": "2026-03-01 00:00", "until": "2026-03-05 00:00", "format": "xml"},
])
def test_bad_export_requests_are_explained(auditor, seeded, params):
    response = client_for(auditor).get(reverse("audit-export"), params)
    assert response.status_code == 400
    # The error is beside its field, and what was typed is still there.
    assert b'class="errorlist"' in response.content and b'aria-invalid="true"' in response.content
    for value in params.values():
        assert f'value="{value}"'.encode() in response.content or value in ("csv", "xml")


def test_the_dashboard_draws_its_charts_from_the_ledger(auditor, db):
    from consent.checks import consent_check
    from tests.consent.factories import make_study

    patient = make_patient("MRN-C")
    allowed, denied = make_study(patient), make_study(patient)
    for decision in ("permit", "permit", "deny"):
        ledger.record(action="consent.recorded", actor=Actor(label="x"),
                      purpose_code="research", details={"decision": decision},
                      occurred_at=T0)
    consent_check(purpose_code="education", at=T0, actor=Actor(label="pacs"),
                  study_uids=[allowed.study_uid, denied.study_uid])
    ledger.record(action="export.included", actor=Actor(label="x"), dataset_ref="3")
    ledger.record(action="export.excluded", actor=Actor(label="x"), dataset_ref="3")
    page = client_for(auditor).get(reverse("audit-dashboard")).content.decode()
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 3
    assert "research 2026-03: 66.7%" in page
    assert "allowed" in page and "<td>2</td>" in page  # both education studies allowed
    assert "dataset 3" in page


def test_an_empty_ledger_shows_no_chart_but_says_so(auditor, db):
    page = client_for(auditor).get(reverse("audit-dashboard")).content.decode()
    assert page.count("Nothing recorded yet.") == 3
