"""The FHIR endpoints against hostile input: every refusal is a 4xx (an OperationOutcome
for the import) and leaves the registry exactly as it was."""

import pytest

from audit.models import AuditEvent
from consent.models import ConsentRecord
from tests.clients import api_with_token

MRN_SYSTEM = "urn:consentry:mrn:LOCAL"
PURPOSE = [{"system": "urn:consentry:purpose", "code": "research"}]


def consent(**changes) -> dict:
    """A Consent for MRN-A (the hospital fixture's Alice) that imports as it stands."""
    document = {
        "resourceType": "Consent", "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "research"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"identifier": {"system": MRN_SYSTEM, "value": "MRN-A"}},
        "provision": {"type": "permit", "purpose": PURPOSE},
    }
    document.update(changes)
    return document


def with_patient(identifier: dict) -> dict:
    """A Bundle whose Consent points at a Patient resource of the same bundle."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "identifier": [identifier]}},
        {"resource": consent(patient={"reference": "Patient/p1"})}]}


def state() -> tuple[int, int]:
    return ConsentRecord.objects.count(), AuditEvent.objects.count()


def test_the_baseline_document_imports(staff, hospital):
    """The hostile variants below differ from this one by one element."""
    client = api_with_token(staff, "consent:write")
    assert client.post("/api/v1/fhir/Consent", consent(), format="json").status_code == 201
    assert client.post("/api/v1/fhir/Consent", with_patient(
        {"system": MRN_SYSTEM, "value": "MRN-A"}), format="json").status_code == 201


@pytest.mark.parametrize(("document", "expression"), [
    # NUL characters: PostgreSQL cannot store them, and no name or code has one.
    (consent(patient={"identifier": {"system": MRN_SYSTEM + "\x00", "value": "MRN-A"}}),
     "Consent.patient.identifier.system"),
    (consent(patient={"identifier": {"system": MRN_SYSTEM, "value": "MRN-A\x00"}}),
     "Consent.patient.identifier.value"),
    (consent(performer=[{"type": "RelatedPerson", "display": "Ann", "extension": [{
        "url": "urn:consentry:fhir:proxy-relationship", "valueString": "mo\x00ther"}]}]),
     "Consent.performer[0].extension[0].valueString"),
    (consent(performer=[{"type": "RelatedPerson", "display": "Ann\x00Other"}]),
     "Consent.performer[0].display"),
    (consent(extension=[{"url": "urn:consentry:fhir:witness", "valueString": "W\x00"}]),
     "Consent.extension[0].valueString"),
    (with_patient({"system": MRN_SYSTEM + "\x00", "value": "MRN-A"}),
     "Bundle.entry[0].resource.identifier[0].system"),
    # Dates a datetime cannot hold once turned to UTC.
    (consent(dateTime="0001-01-01T00:00:00+14:00"), "Consent.dateTime"),
    (consent(dateTime="9999-12-31T23:59:59-14:00"), "Consent.dateTime"),
    (consent(provision={"type": "permit", "purpose": PURPOSE,
                        "period": {"end": "9999-12-31T23:59:59-14:00"}}),
     "Consent.provision.period.end"),
    # A bundle's Patient whose identifiers are not strings.
    (with_patient({"system": 1, "value": "MRN-A"}), "Bundle.entry[1].resource.patient"),
    (with_patient({"system": MRN_SYSTEM, "value": ["MRN-A"]}),
     "Bundle.entry[1].resource.patient"),
], ids=["nul-system", "nul-mrn", "nul-relationship", "nul-proxy", "nul-witness",
        "nul-bundle-patient", "year-0", "year-10000", "expiry-year-10000",
        "numeric-system", "list-value"])
def test_hostile_document_is_an_operation_outcome_and_changes_nothing(
        staff, hospital, document, expression):
    client = api_with_token(staff, "consent:write")
    before = state()
    response = client.post("/api/v1/fhir/Consent", document, format="json")
    assert response.status_code == 422, response.content
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"][0].startswith(expression)
    assert state() == before


@pytest.mark.parametrize("param", ["²", "Patient/²", "¹²³", "Patient/①",
                                   f"{MRN_SYSTEM}\x00|MRN-A", f"{MRN_SYSTEM}|MRN-A\x00"])
def test_search_by_a_digit_that_is_no_number_is_an_empty_result(staff, hospital, param):
    """str.isdigit() accepts superscripts that int() refuses, and PostgreSQL refuses a NUL:
    both were 500s."""
    response = api_with_token(staff, "consent:read").get("/api/v1/fhir/Consent",
                                                        {"patient": param})
    assert response.status_code == 200
    assert response.json()["total"] == 0


def test_a_patient_whose_identifiers_name_two_registered_patients_is_refused(staff, hospital):
    """MRN-A and MRN-B are Alice and Bob: recording the consent for whichever is listed
    first would give one patient's choice to the other."""
    document = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "identifier": [
            {"system": MRN_SYSTEM, "value": "MRN-A"}, {"system": MRN_SYSTEM, "value": "MRN-B"}]}},
        {"resource": consent(patient={"reference": "Patient/p1"})}]}
    client = api_with_token(staff, "consent:write")
    before = state()
    response = client.post("/api/v1/fhir/Consent", document, format="json")
    assert response.status_code == 422
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.patient"]
    assert "different patients" in issue["diagnostics"]
    assert state() == before


def test_a_reference_and_an_identifier_naming_different_patients_are_refused(staff, hospital):
    document = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "identifier": [
            {"system": MRN_SYSTEM, "value": "MRN-B"}]}},
        {"resource": consent(patient={"reference": "Patient/p1", "identifier": {
            "system": MRN_SYSTEM, "value": "MRN-A"}})}]}
    client = api_with_token(staff, "consent:write")
    before = state()
    response = client.post("/api/v1/fhir/Consent", document, format="json")
    assert response.status_code == 422
    assert "different patients" in response.json()["issue"][0]["diagnostics"]
    assert state() == before


def test_identifiers_that_agree_on_one_patient_import(staff, hospital):
    alice, _, _ = hospital
    document = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1", "identifier": [
            {"system": MRN_SYSTEM, "value": "MRN-A"}, {"system": "urn:other", "value": "9"},
            {"system": MRN_SYSTEM, "value": "MRN-UNKNOWN"}]}},
        {"resource": consent(patient={"reference": "Patient/p1", "identifier": {
            "system": MRN_SYSTEM, "value": "MRN-A"}})}]}
    response = api_with_token(staff, "consent:write").post("/api/v1/fhir/Consent", document,
                                                           format="json")
    assert response.status_code == 201
    assert ConsentRecord.objects.get().patient == alice
