"""FHIR R4 Consent both ways: our records out as Consent resources, Consent resources in
through the consent services, all or nothing, with an OperationOutcome naming the element."""

import copy
import json
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.consent import Consent

from audit.ledger import Actor
from audit.models import AuditEvent
from consent.fhir.imports import FhirRefused, consent_fhir_import
from consent.models import ConsentRecord
from consent.services import consent_record
from tests.clients import api_as, api_with_token
from tests.consent.factories import form, make_patient, make_study, purpose

DATA = Path(__file__).parent.parent / "data" / "fhir"
STAFF = Actor(label="test staff", role="staff")
MRN_SYSTEM = "urn:consentry:mrn:LOCAL"


def every_scope(patient, study):
    """One record of every scope, with a proxy, a witness and an expiry among them."""
    made = []
    for kwargs in (
        {"purpose": "research", "decision": "permit"},
        {"purpose": "ai-training", "decision": "deny", "scope_kind": "study",
         "scope_value": study.study_uid},
        {"purpose": "research", "decision": "deny", "scope_kind": "modality",
         "scope_value": "MR"},
        {"purpose": "education", "decision": "permit", "scope_kind": "body_part",
         "scope_value": "head and brain", "proxy_name": "Carol Parent",
         "proxy_relationship": "mother",
         "effective_from": datetime(2026, 1, 1, tzinfo=UTC),
         "expires_at": datetime(2027, 1, 1, tzinfo=UTC)},
        {"purpose": "external-sharing", "decision": "permit", "source": "verbal",
         "witness": "R. Clerk"},
    ):
        kwargs = {"source": "staff", **kwargs}
        made.append(consent_record(patient=patient, purpose=purpose(kwargs.pop("purpose")),
                                   actor=STAFF, form=form(), **kwargs))
    return made


def without_ids(bundle):
    return [{k: v for k, v in e["resource"].items() if k != "id"} for e in bundle["entry"]]


def consent(**provision):
    """A minimal Consent for the patient MRN-A (of the hospital fixture)."""
    return {"resourceType": "Consent", "status": "active",
            "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                            "consentscope", "code": "research"}]},
            "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            "patient": {"identifier": {"system": MRN_SYSTEM, "value": "MRN-A"}},
            "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                 "v3-ActCode", "code": "OPTIN"}]},
            "provision": provision}


PURPOSE = [{"system": "urn:consentry:purpose", "code": "research"}]


def test_records_of_every_scope_are_valid_r4_consents(staff, hospital):
    alice, _, studies = hospital
    every_scope(alice, studies["a-ct"])
    response = api_as(staff).get("/api/v1/fhir/Consent", {"patient": alice.pk})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = response.json()
    Bundle.model_validate(bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    for resource in resources:
        Consent.model_validate(resource)
    by_purpose = {(r["provision"]["purpose"][0]["code"], r["provision"]["type"]): r
                  for r in resources}
    study = by_purpose[("ai-training", "deny")]["provision"]["data"][0]["reference"]
    assert study["identifier"]["value"] == f"urn:oid:{studies['a-ct'].study_uid}"
    assert by_purpose[("research", "deny")]["provision"]["code"][0]["coding"][0]["code"] == "MR"
    education = by_purpose[("education", "permit")]
    assert education["provision"]["code"][0]["coding"][0]["code"] == "HEAD"
    assert education["provision"]["period"]["end"].startswith("2027-01-01")
    assert education["performer"][0]["display"] == "Carol Parent"
    assert by_purpose[("research", "permit")]["scope"]["coding"][0]["code"] == "research"
    assert by_purpose[("external-sharing", "permit")]["scope"]["coding"][0]["code"] == \
        "patient-privacy"
    assert AuditEvent.objects.filter(action="phi.viewed", patient_ref=str(alice.pk),
                                     details__via="fhir").count() == 1


def test_round_trip_into_an_empty_registry_gives_equal_resources(staff, hospital):
    alice, _, studies = hospital
    client = api_as(staff)
    with transaction.atomic():
        every_scope(alice, studies["a-ct"])
        exported = client.get("/api/v1/fhir/Consent", {"patient": alice.pk}).json()
        # Undo the records (the table refuses DELETE; a rollback is no DELETE): the
        # registry is left with patients and studies but no consent.
        transaction.set_rollback(True)
    assert not ConsentRecord.objects.exists()
    records = consent_fhir_import(document=exported, actor=STAFF)
    assert len(records) == 5
    assert {r.source for r in records} == {"fhir"}
    again = client.get("/api/v1/fhir/Consent", {"patient": alice.pk}).json()
    assert without_ids(again) == without_ids(exported)


def test_read_one_consent_and_a_missing_one(staff, hospital):
    alice, _, studies = hospital
    record = every_scope(alice, studies["a-ct"])[1]
    client = api_as(staff)
    body = client.get(f"/api/v1/fhir/Consent/{record.pk}").json()
    assert body["id"] == str(record.pk) and body["provision"]["type"] == "deny"
    missing = client.get("/api/v1/fhir/Consent/999999")
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


def test_search_by_identifier_and_unknown_patient(staff, hospital):
    alice, _, studies = hospital
    every_scope(alice, studies["a-ct"])
    client = api_as(staff)
    found = client.get("/api/v1/fhir/Consent", {"patient": f"{MRN_SYSTEM}|MRN-A"}).json()
    assert found["total"] == 5
    assert client.get("/api/v1/fhir/Consent", {"patient": "424242"}).json()["total"] == 0
    bad = client.get("/api/v1/fhir/Consent")
    assert bad.status_code == 400 and bad.json()["issue"][0]["expression"] == ["patient"]


def test_patients_and_outsiders_cannot_read_consents(patient, outsider, hospital):
    alice, _, _ = hospital
    for user in (patient.user, outsider):
        assert api_as(user).get("/api/v1/fhir/Consent",
                                {"patient": alice.pk}).status_code in (403, 404)


def test_post_a_consent_with_nested_exceptions(staff, hospital):
    alice, _, studies = hospital
    document = consent(type="permit", purpose=PURPOSE, provision=[
        {"type": "deny", "code": [{"coding": [{"system": "http://dicom.nema.org/resources/"
                                                         "ontology/DCM", "code": "MR"}]}]},
        {"type": "deny", "data": [{"meaning": "related", "reference": {
            "identifier": {"system": "urn:dicom:uid",
                           "value": f"urn:oid:{studies['a-ct'].study_uid}"}}}]},
    ])
    client = api_with_token(staff, "consent:write")
    response = client.post("/api/v1/fhir/Consent", document, format="json")
    assert response.status_code == 201, response.json()
    made = set(ConsentRecord.objects.filter(patient=alice).values_list(
        "decision", "scope_kind", "scope_value"))
    assert made == {("permit", "all", ""), ("deny", "modality", "MR"),
                    ("deny", "study", studies["a-ct"].study_uid)}
    assert AuditEvent.objects.filter(action__startswith="consent.").count() == 3


def test_nested_exceptions_are_exported_nested_and_round_trip(staff, hospital):
    alice, _, studies = hospital
    posted = consent(type="permit", purpose=PURPOSE, period={"start": "2026-01-01"},
                     provision=[
                         {"type": "deny", "code": [{"coding": [{
                             "system": "http://dicom.nema.org/resources/ontology/DCM",
                             "code": "MR"}]}]},
                         {"type": "deny", "data": [{"meaning": "related", "reference": {
                             "identifier": {"system": "urn:dicom:uid", "value":
                                            f"urn:oid:{studies['a-ct'].study_uid}"}}}]}])
    client = api_as(staff)
    with transaction.atomic():
        created = client.post("/api/v1/fhir/Consent", posted, format="json").json()
        [resource] = [e["resource"] for e in created["entry"]]
        nested = resource["provision"]["provision"]
        assert [(p["type"], "code" in p, "data" in p) for p in nested] == \
            [("deny", True, False), ("deny", False, True)]
        # Reading an exception's record gives the Consent it came with.
        exception_id = ConsentRecord.objects.filter(scope_kind="modality").get().pk
        assert client.get(f"/api/v1/fhir/Consent/{exception_id}").json() == resource
        exported = client.get("/api/v1/fhir/Consent", {"patient": alice.pk}).json()
        transaction.set_rollback(True)
    consent_fhir_import(document=exported, actor=STAFF)
    again = client.get("/api/v1/fhir/Consent", {"patient": alice.pk}).json()
    assert without_ids(again) == without_ids(exported)
    assert ConsentRecord.objects.count() == 3


def test_fhir_json_content_type_is_accepted(staff, hospital):
    response = api_as(staff).post(
        "/api/v1/fhir/Consent", json.dumps(consent(type="permit", purpose=PURPOSE)),
        content_type="application/fhir+json")
    assert response.status_code == 201


@pytest.mark.parametrize(("change", "expression"), [
    (lambda c: c["provision"].update(actor=[{"role": {"text": "recipient"}, "reference": {
        "reference": "Practitioner/1"}}]), "Consent.provision.actor"),
    (lambda c: c["provision"].update(actor=[{"reference": {"reference": "Practitioner/1"}}]),
     "Consent.provision.actor[0].role"),
    (lambda c: c["provision"].update(purpose=[{"system": "urn:x", "code": "marketing"}]),
     "Consent.provision.purpose[0]"),
    (lambda c: c["provision"].pop("purpose"), "Consent.provision.purpose"),
    (lambda c: c["provision"].update(code=[{"coding": [{
        "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "TOASTER"}]}]),
     "Consent.provision.code[0]"),
    (lambda c: c["provision"].update(data=[{"meaning": "related", "reference": {
        "reference": "DocumentReference/1"}}]), "Consent.provision.data[0].reference"),
    (lambda c: c["provision"].update(provision=[{"type": "deny"}]),
     "Consent.provision.provision[0]"),
    (lambda c: c["provision"].update(code=[{"coding": [{
        "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}]}],
        provision=[{"type": "deny"}]), "Consent.provision.provision[0]"),
    (lambda c: c["provision"].update(code=[{"coding": [{
        "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "MR"}]}],
        provision=[{"type": "deny", "code": [{"coding": [{
            "system": "urn:consentry:body-region", "code": "HEAD"}]}]}]),
     "Consent.provision.provision[0]"),
    (lambda c: c["provision"]["period"].update(start="2026-06-01", end="2026-01-01"),
     "Consent.provision.period.end"),
    (lambda c: c.update(status="proposed"), "Consent.status"),
    (lambda c: c.update(patient={"identifier": {"system": MRN_SYSTEM, "value": "NOBODY"}}),
     "Consent.patient"),
    (lambda c: c.update(patient={"reference": "Patient/elsewhere"}), "Consent.patient"),
    (lambda c: c.update(performer=[{"reference": "Practitioner/7"}]),
     "Consent.performer[0]"),
    (lambda c: c.update(status=42), "Consent.status"),
])
def test_unmappable_consents_are_refused_naming_the_element(staff, hospital, change,
                                                            expression):
    document = consent(type="permit", purpose=PURPOSE, period={"start": "2026-01-01"})
    change(document)
    events = AuditEvent.objects.count()
    response = api_as(staff).post("/api/v1/fhir/Consent", document, format="json")
    assert response.status_code == 422, response.json()
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == [expression], outcome
    assert not ConsentRecord.objects.exists()
    assert AuditEvent.objects.count() == events


def test_a_bundle_is_imported_whole_or_not_at_all(hospital):
    _, _, studies = hospital
    good = consent(type="permit", purpose=PURPOSE)
    # Mapped fine, but the service refuses it: Bob's study is not Alice's.
    bad = consent(type="deny", purpose=PURPOSE, data=[{"meaning": "related", "reference": {
        "identifier": {"system": "urn:dicom:uid",
                       "value": f"urn:oid:{studies['b-ct'].study_uid}"}}}])
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": good}, {"resource": bad}]}
    with pytest.raises(FhirRefused) as refused:
        consent_fhir_import(document=bundle, actor=STAFF)
    assert refused.value.issues[0][0] == "Bundle.entry[1].resource.provision.data"
    assert not ConsentRecord.objects.exists()


@pytest.mark.parametrize("document", [
    [], "Consent", {"resourceType": "Patient"}, {"resourceType": "Bundle", "entry": "x"},
    {"resourceType": "Bundle", "entry": []}, {"resourceType": "Bundle", "entry": [1]},
])
def test_documents_that_are_not_consents_are_refused(hospital, document):
    with pytest.raises(FhirRefused):
        consent_fhir_import(document=document, actor=STAFF)
    assert not ConsentRecord.objects.exists()


@pytest.fixture
def van_de_heuvel(settings, db):
    """The published examples' patient f001, registered under the hospital's BSN system."""
    settings.CONSENTRY_FHIR_MRN_SYSTEMS = {"urn:oid:2.16.840.1.113883.2.4.6.3": "NL-BSN"}
    from registry.models import Patient

    patient = Patient.objects.create(issuer="NL-BSN", mrn="738472983",
                                     name="van de Heuvel^Pieter")
    make_study(patient, ("CT", "CHEST"))
    return patient


def test_r4_example_basic_imports_with_a_default_purpose(van_de_heuvel):
    out = StringIO()
    call_command("import_fhir_consent", str(DATA / "consent-example-basic.json"),
                 "--purpose", "research", stdout=out)
    assert "imported 1 consent records" in out.getvalue()
    record = ConsentRecord.objects.get(patient=van_de_heuvel)
    assert (record.decision, record.scope_kind, record.purpose.code, record.source) == \
        ("permit", "all", "research", "fhir")
    assert record.effective_from == datetime(1964, 1, 1, tzinfo=UTC)
    assert record.expires_at == datetime(2016, 1, 1, tzinfo=UTC)  # the published period.end


@pytest.mark.parametrize(("example", "purpose_code", "expression"), [
    ("consent-example-basic", "", "Bundle.entry[0].resource.provision.purpose"),
    ("consent-example-Out", "research", "Bundle.entry[0].resource.provision.actor"),
    ("consent-example-notThis", "research",
     "Bundle.entry[0].resource.provision.data[0].reference"),
])
def test_r4_examples_that_cannot_be_mapped_are_refused(van_de_heuvel, example, purpose_code,
                                                       expression):
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_fhir_consent", str(DATA / f"{example}.json"),
                     "--purpose", purpose_code, stderr=err)
    assert expression in err.getvalue()
    assert not ConsentRecord.objects.exists()


def test_the_r4_examples_parse_as_r4_consents():
    for path in sorted(DATA.glob("consent-example-*.json")):
        bundle = json.loads(path.read_text())
        Consent.model_validate(copy.deepcopy(bundle["entry"][0]["resource"]))


def test_import_command_refuses_a_file_that_is_not_json(tmp_path, db):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    err = StringIO()
    with pytest.raises(CommandError):
        call_command("import_fhir_consent", str(broken), stderr=err)
    assert "not readable as JSON" in err.getvalue()
    make_patient()
