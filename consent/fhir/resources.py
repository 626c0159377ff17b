"""Our consent records as FHIR R4 Consent resources (one resource per record).

A record is immutable and names one purpose, one decision and one scope, so each maps onto
a Consent whose root provision carries them: ``type`` permit/deny, ``period`` (effective
from, expiry), ``purpose`` (our purpose code, and its DUO term when it has one), and the
scope as ``data`` (a study, by its StudyInstanceUID) or ``code`` (a modality from DICOM's
vocabulary, a body region from ours). ``consent/fhir/imports.py`` reads exactly this shape
back, so an export imported into an empty registry exports again as equal resources.
"""

from __future__ import annotations

from typing import Any

from consent.engine import PurposeTree
from consent.models import ConsentRecord, Decision, ScopeKind
from registry import vocabulary

LOINC = "http://loinc.org"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DUO = "http://purl.obolibrary.org/obo/duo"
PURPOSE_SYSTEM = "urn:consentry:purpose"
REGION_SYSTEM = "urn:consentry:body-region"
DICOM_UID_SYSTEM = "urn:dicom:uid"
# A patient's identifier: their MRN, in a system naming the authority that issued it.
MRN_SYSTEM_PREFIX = "urn:consentry:mrn:"
FORM_POLICY_PREFIX = "urn:consentry:consent-form:"
PROXY_RELATIONSHIP_URL = "urn:consentry:fhir:proxy-relationship"
WITNESS_URL = "urn:consentry:fhir:witness"


def patient_identifier(issuer: str, mrn: str) -> dict[str, str]:
    return {"system": MRN_SYSTEM_PREFIX + issuer, "value": mrn}


def consent_resource(record: ConsentRecord, tree: PurposeTree | None = None) -> dict[str, Any]:
    """One record as a Consent. ``record`` needs patient, purpose and form loaded."""
    tree = tree or PurposeTree.load()
    purpose = record.purpose
    patient = record.patient
    research = "research" in {tree.by_id[pk].code for pk in tree.lineage(purpose)}
    purpose_codings = [{"system": PURPOSE_SYSTEM, "code": purpose.code,
                        "display": purpose.name}]
    if purpose.duo_id:
        purpose_codings.append({"system": DUO, "code": purpose.duo_id})
    period: dict[str, str] = {"start": record.effective_from.isoformat()}
    if record.expires_at:
        period["end"] = record.expires_at.isoformat()
    provision: dict[str, Any] = {
        "type": "permit" if record.decision == Decision.PERMIT else "deny",
        "period": period,
        "purpose": purpose_codings,
    }
    provision.update(_scope(record))
    if record.proxy_name:
        performer: dict[str, Any] = {"type": "RelatedPerson", "display": record.proxy_name,
                                     "extension": [{"url": PROXY_RELATIONSHIP_URL,
                                                    "valueString": record.proxy_relationship}]}
    else:
        performer = {"type": "Patient",
                     "identifier": patient_identifier(patient.issuer, patient.mrn)}
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": str(record.pk),
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE,
                              "code": "research" if research else "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0",
                                  "display": "Patient Consent"}]}],
        "patient": {"type": "Patient",
                    "identifier": patient_identifier(patient.issuer, patient.mrn)},
        "dateTime": record.effective_from.isoformat(),
        "performer": [performer],
        "policy": [{"uri": f"{FORM_POLICY_PREFIX}{record.form.code}:v{record.form.version}"}],
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"
                                   if record.decision == Decision.PERMIT else "OPTOUT"}]},
        "provision": provision,
    }
    if record.witness:
        resource["extension"] = [{"url": WITNESS_URL, "valueString": record.witness}]
    return resource


def _scope(record: ConsentRecord) -> dict[str, Any]:
    """A record's scope as provision elements: ``data`` for a study, ``code`` otherwise."""
    if record.scope_kind == ScopeKind.STUDY:
        return {"data": [{"meaning": "related", "reference": {
            "type": "ImagingStudy",
            "identifier": {"system": DICOM_UID_SYSTEM,
                           "value": f"urn:oid:{record.scope_value}"}}}]}
    if record.scope_kind == ScopeKind.MODALITY:
        return {"code": [{"coding": [{
            "system": DCM, "code": record.scope_value,
            "display": vocabulary.modality_label(record.scope_value)}]}]}
    if record.scope_kind == ScopeKind.BODY_PART:
        return {"code": [{"coding": [{
            "system": REGION_SYSTEM, "code": record.scope_value,
            "display": vocabulary.region_label(record.scope_value)}]}]}
    return {}


def _given_together(record: ConsentRecord) -> tuple:
    """Records made from one Consent with nested provisions share all of this."""
    return (record.patient_id, record.purpose_id, record.effective_from, record.expires_at,
            record.proxy_name, record.proxy_relationship, record.witness, record.form_id)


def consent_resources(records, tree: PurposeTree | None = None
                      ) -> list[tuple[list[int], dict[str, Any]]]:
    """Records as Consents, each with the ids of the records it holds.

    A general choice (all studies) and the exceptions given with it (narrower scopes of the
    same purpose, same period, same person) are one Consent: the exceptions are nested
    provisions, as the Consent that brought them in had them. Everything else is one
    Consent per record. ``records`` in the order they were recorded."""
    tree = tree or PurposeTree.load()
    groups: dict[tuple, list[ConsentRecord]] = {}
    for record in records:
        groups.setdefault(_given_together(record), []).append(record)
    out = []
    for group in groups.values():
        root, rest = group[0], group[1:]
        if root.scope_kind != ScopeKind.ALL or not rest or any(
                r.scope_kind == ScopeKind.ALL for r in rest):
            out += [([r.pk], consent_resource(r, tree)) for r in group]
            continue
        resource = consent_resource(root, tree)
        resource["provision"]["provision"] = [
            {"type": "permit" if r.decision == Decision.PERMIT else "deny", **_scope(r)}
            for r in rest]
        out.append(([root.pk, *(r.pk for r in rest)], resource))
    return out


def consent_bundle(records, tree: PurposeTree | None = None) -> dict[str, Any]:
    """A searchset Bundle, as ``GET /fhir/Consent?patient=`` answers."""
    entries = [{"fullUrl": f"Consent/{resource['id']}", "resource": resource,
                "search": {"mode": "match"}}
               for _, resource in consent_resources(records, tree)]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
            "entry": entries}


def operation_outcome(issues: list[tuple[str, str]], code: str = "invalid") -> dict[str, Any]:
    """An OperationOutcome with one error per (FHIRPath expression, what is wrong)."""
    return {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": code, "diagnostics": text,
         **({"expression": [where]} if where else {})}
        for where, text in issues]}
