"""Ledger events as FHIR R4 AuditEvent resources (for export to other audit systems)."""

from __future__ import annotations

from typing import Any

from audit import codes
from audit.models import AuditEvent, Outcome

DCM = "http://dicom.nema.org/resources/ontology/DCM"
# FHIR AuditEvent.action: Create, Read, Update, Delete, Execute.
ACTION_CODES = {"consent.recorded": "C", "consent.withdrawn": "C", "dicom.registered": "C",
                "phi.viewed": "R", "phi.searched": "E", "consent.checked": "E",
                "export.included": "R", "export.delivered": "R", "study.received": "C",
                "export.sent": "R", "export.withheld": "E"}
OUTCOME_CODES = {Outcome.SUCCESS: "0", Outcome.DENIED: "4", Outcome.FAILURE: "8"}


def audit_event_resource(event: AuditEvent) -> dict[str, Any]:
    code = event.event_code or codes.APPLICATION_ACTIVITY
    agent: dict[str, Any] = {
        "who": {"display": event.actor_label},
        "requestor": True,
    }
    if event.api_token:
        agent["who"]["identifier"] = {"system": "urn:consentry:api-token",
                                      "value": event.api_token}
    if event.actor_role:
        agent["role"] = [{"text": event.actor_role}]
    if event.actor_ip:
        agent["network"] = {"address": event.actor_ip, "type": "2"}
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event.pk),
        "type": {"system": DCM, "code": code, "display": codes.DISPLAY.get(code, code)},
        "subtype": [{"system": "urn:consentry:action", "code": event.action}],
        "action": ACTION_CODES.get(event.action, "E"),
        "recorded": event.occurred_at.isoformat(),
        "outcome": OUTCOME_CODES.get(event.outcome, "8"),
        "agent": [agent],
        "source": {"observer": {"display": "Consentry"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                       "security-source-type", "code": "4",
                             "display": "Application Server"}]},
    }
    if event.reason:
        resource["outcomeDesc"] = event.reason
    if event.purpose_code:
        resource["purposeOfEvent"] = [{"coding": [{"system": "urn:consentry:purpose",
                                                   "code": event.purpose_code}]}]
    entities = []
    if event.patient_ref:
        entities.append({"what": {"identifier": {"system": "urn:consentry:patient",
                                                 "value": event.patient_ref}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                            "audit-entity-type", "code": "1",
                                  "display": "Person"}})
    if event.study_uid:
        entities.append({"what": {"identifier": {"system": "urn:dicom:uid",
                                                 "value": f"urn:oid:{event.study_uid}"}},
                         "type": {"system": "http://terminology.hl7.org/CodeSystem/"
                                            "audit-entity-type", "code": "2",
                                  "display": "System Object"}})
    if entities:
        resource["entity"] = entities
    return resource


def audit_bundle(events) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": audit_event_resource(e)} for e in events]}
