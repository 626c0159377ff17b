"""FHIR R4 Consent resources onto our records, through ``consent_record``.

A Consent (or a Bundle of them, as an EHR exports them) is parsed and validated with
fhir.resources, then mapped provision by provision: the root provision and each nested one
become one record per purpose and per scope they name. Everything is mapped before anything
is written, and the writes share one transaction: a Consent that cannot be mapped refuses
the whole document with an OperationOutcome naming the element, and nothing is imported.

What is refused rather than guessed: provisions limited to actors, actions, security
labels, classes or data periods (our records have no such dimension, and widening a permit
would share what the patient did not allow); a scope that both names data and codes (we
store one scope per record); data that is not an ImagingStudy by its StudyInstanceUID;
purposes we do not know; patients we have not registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pydantic
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from fhir.resources.R4B.consent import Consent

from audit.ledger import Actor
from consent import selectors
from consent.engine import PurposeTree
from consent.fhir.resources import (
    DCM,
    DICOM_UID_SYSTEM,
    DUO,
    MRN_SYSTEM_PREFIX,
    PROXY_RELATIONSHIP_URL,
    PURPOSE_SYSTEM,
    REGION_SYSTEM,
    WITNESS_URL,
)
from consent.models import ConsentRecord, Purpose, ScopeKind, Source
from consent.services import consent_record
from registry import vocabulary
from registry.models import Patient
from registry.selectors import patient_by_identifier

ACCEPTED_SCOPES = {"patient-privacy", "research"}
# Provision elements our records cannot express: refused, never dropped.
UNMAPPABLE = ("actor", "action", "securityLabel", "class", "dataPeriod")
# consent_record's fields, as the elements they came from.
FIELD_ELEMENTS = {"expires_at": "period.end", "effective_from": "period.start",
                  "decision": "type"}


class FhirRefused(Exception):
    """The document cannot be imported; ``issues`` are (FHIRPath expression, why)."""

    def __init__(self, issues: list[tuple[str, str]]):
        super().__init__("; ".join(f"{where}: {why}" for where, why in issues))
        self.issues = issues


@dataclass(frozen=True)
class Draft:
    """One record to write, and the element it came from (for error messages)."""

    where: str
    patient: Patient
    purpose: Purpose
    decision: str
    scope_kind: str
    scope_value: str
    effective_from: datetime | None
    expires_at: datetime | None
    proxy_name: str
    proxy_relationship: str
    witness: str


def consents_in(document: Any) -> tuple[list[tuple[str, dict]], dict[str, dict]]:
    """The Consent resources of a document (a Consent or a Bundle), each with its path, and
    the bundle's Patient resources by ``Patient/id`` (references resolve through them)."""
    if not isinstance(document, dict):
        raise FhirRefused([("", "expected a FHIR resource (a JSON object)")])
    kind = document.get("resourceType")
    _refuse_nul(document, kind if isinstance(kind, str) else "")
    if kind == "Consent":
        return [("Consent", document)], {}
    if kind != "Bundle":
        raise FhirRefused([("resourceType", f"expected Consent or Bundle, not {kind!r}")])
    consents, patients = [], {}
    entries = document.get("entry") or []
    if not isinstance(entries, list):
        raise FhirRefused([("Bundle.entry", "must be a list")])
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            raise FhirRefused([(f"Bundle.entry[{index}]", "has no resource")])
        if resource.get("resourceType") == "Consent":
            consents.append((f"Bundle.entry[{index}].resource", resource))
        elif resource.get("resourceType") == "Patient" and resource.get("id"):
            patients[f"Patient/{resource['id']}"] = resource
    if not consents:
        raise FhirRefused([("Bundle.entry", "no Consent resource in the bundle")])
    return consents, patients


def _refuse_nul(document: dict, root: str) -> None:
    """Refuse a NUL character anywhere in the document, naming the element: no name, code
    or identifier holds one, PostgreSQL cannot store one, and a blind index or an
    encrypted field would otherwise keep it where no one can see it."""
    stack: list[tuple[str, Any]] = [(root, document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, child in value.items():
                if "\x00" in key:
                    raise FhirRefused([(path, "element names cannot contain NUL characters")])
                stack.append((f"{path}.{key}" if path else key, child))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", child) for index, child in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            raise FhirRefused([(path, "text cannot contain NUL characters")])


def _when(value: Any, where: str) -> datetime | None:
    """A FHIR date or dateTime as an aware UTC datetime (a bare date is midnight UTC).
    A moment that leaves the years 1 to 9999 once turned to UTC is refused, naming
    ``where``: neither Python nor the database can hold it."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value if value.tzinfo else value.replace(tzinfo=UTC)
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    else:
        text = str(value)
        if len(text) == 4:
            text += "-01-01"
        elif len(text) == 7:
            text += "-01"
        parsed = datetime.fromisoformat(text)
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise FhirRefused([(where, "out of range: years 1 to 9999 (UTC) only")]) from None


def _issuer_for(system: str) -> str | None:
    if system.startswith(MRN_SYSTEM_PREFIX):
        return system[len(MRN_SYSTEM_PREFIX):]
    return settings.CONSENTRY_FHIR_MRN_SYSTEMS.get(system)


def _patient(consent: Consent, where: str, patients: dict[str, dict]) -> Patient:
    ref = consent.patient
    if ref is None:
        raise FhirRefused([(f"{where}.patient", "a consent must name its patient")])
    identifiers = []
    if ref.identifier is not None:
        identifiers.append((ref.identifier.system or "", ref.identifier.value or ""))
    if ref.reference and (ref.identifier is None or ref.reference in patients):
        # A reference into the bundle is read even beside an identifier: both must name
        # the same patient (checked below).
        resource = patients.get(ref.reference)
        if resource is None:
            raise FhirRefused([(f"{where}.patient", f"{ref.reference} is neither in the "
                                                    "bundle nor given by identifier")])
        listed = resource.get("identifier") or []
        identifiers += [(i.get("system", ""), i.get("value", ""))
                        for i in listed if isinstance(i, dict)] if isinstance(listed, list) \
            else []
        if not all(isinstance(part, str) for pair in identifiers for part in pair):
            # The bundle's Patient is not validated as a resource: its identifiers are
            # checked here, as the only elements read from it.
            raise FhirRefused([(f"{where}.patient", f"{ref.reference} has an identifier "
                                                    "whose system or value is not text")])
    known = [(issuer, value) for system, value in identifiers
             for issuer in [_issuer_for(system)] if issuer and value]
    if not known:
        raise FhirRefused([(f"{where}.patient", "no identifier in a known MRN system "
                                                f"({MRN_SYSTEM_PREFIX}<issuer> or "
                                                "CONSENTRY_FHIR_MRN_SYSTEMS)")])
    found = {patient.pk: patient for issuer, mrn in known
             for patient in [patient_by_identifier(issuer=issuer, mrn=mrn)] if patient}
    if len(found) > 1:
        # Taking the first would record one patient's choice for another.
        raise FhirRefused([(f"{where}.patient", "the patient's identifiers name different "
                                                "patients registered here")])
    if not found:
        raise FhirRefused([(f"{where}.patient", "no registered patient has this identifier")])
    return next(iter(found.values()))


def _purposes(provision, where: str, inherited: list[Purpose], tree: PurposeTree
              ) -> list[Purpose]:
    if not provision.purpose:
        return inherited
    found = []
    by_duo = {p.duo_id: p for p in tree.by_code.values() if p.duo_id}
    for index, coding in enumerate(provision.purpose):
        if coding.system == PURPOSE_SYSTEM and coding.code in tree.by_code:
            found.append(tree.by_code[coding.code])
        elif coding.system == DUO and coding.code in by_duo:
            if not any(c.system == PURPOSE_SYSTEM for c in provision.purpose):
                found.append(by_duo[coding.code])
        else:
            raise FhirRefused([(f"{where}.purpose[{index}]",
                                f"unknown purpose {coding.system}|{coding.code}")])
    return list(dict.fromkeys(found))


def _scopes(provision, where: str) -> list[tuple[str, str]]:
    """(scope kind, value) pairs a provision names; [] when it names none."""
    if provision.data and provision.code:
        raise FhirRefused([(f"{where}.code", "a provision may name studies or codes, not "
                                             "both: each record has one scope")])
    scopes = []
    for index, item in enumerate(provision.data or []):
        identifier = item.reference.identifier if item.reference else None
        value = (identifier.value or "") if identifier else ""
        if identifier is None or identifier.system != DICOM_UID_SYSTEM or \
                not value.startswith("urn:oid:"):
            raise FhirRefused([(f"{where}.data[{index}].reference", "only an ImagingStudy "
                                "named by its StudyInstanceUID (urn:dicom:uid) can be a "
                                "scope")])
        scopes.append((ScopeKind.STUDY, value.removeprefix("urn:oid:")))
    for index, concept in enumerate(provision.code or []):
        for coding in concept.coding or []:
            try:
                if coding.system == DCM:
                    scopes.append((ScopeKind.MODALITY,
                                   vocabulary.canonical_modality(coding.code or "")))
                elif coding.system == REGION_SYSTEM:
                    scopes.append((ScopeKind.BODY_PART,
                                   vocabulary.canonical_region(coding.code or "")))
                else:
                    raise vocabulary.UnknownTerm(f"unknown code system {coding.system}")
            except vocabulary.UnknownTerm as exc:
                raise FhirRefused([(f"{where}.code[{index}]", str(exc))]) from None
    return list(dict.fromkeys(scopes))


def _performer(consent: Consent, where: str) -> tuple[str, str]:
    """(proxy name, relationship); ('', '') when the patient chose for themselves."""
    for index, ref in enumerate(consent.performer or []):
        kind = ref.type or (ref.reference or "").split("/")[0]
        if kind == "Patient":
            continue
        if kind == "RelatedPerson" and ref.display:
            relationship = next((e.valueString for e in ref.extension or []
                                 if e.url == PROXY_RELATIONSHIP_URL and e.valueString),
                                "related person")
            return ref.display[:200], relationship[:64]
        raise FhirRefused([(f"{where}.performer[{index}]", "only the patient or a named "
                                                           "RelatedPerson can give consent")])
    return "", ""


def _provision_drafts(provision, where: str, *, patient: Patient, purposes: list[Purpose],
                      decision: str | None, start: datetime | None, end: datetime | None,
                      nested: bool, parent_scoped: bool, common: dict, tree: PurposeTree
                      ) -> list[Draft]:
    for element in UNMAPPABLE:
        if getattr(provision, element, None):
            raise FhirRefused([(f"{where}.{element}", f"provisions limited by {element} "
                                                      "cannot be recorded")])
    decision = provision.type or decision
    if decision not in ("permit", "deny"):
        raise FhirRefused([(f"{where}.type", "permit or deny is needed (or a policyRule "
                                             "OPTIN/OPTOUT)")])
    purposes = _purposes(provision, where, purposes, tree)
    if not purposes:
        raise FhirRefused([(f"{where}.purpose", "no purpose we know is named (give one, or "
                                                "a default purpose for the import)")])
    if provision.period is not None:
        start = _when(provision.period.start, f"{where}.period.start") or start
        end = _when(provision.period.end, f"{where}.period.end") or end
    scopes = _scopes(provision, where)
    if nested and parent_scoped:
        # "This modality, but within it that body part" has no record to hold it.
        raise FhirRefused([(where, "a provision nested in a scoped provision cannot be "
                                   "recorded")])
    if nested and not scopes:
        # A nested provision narrows its parent (an exception): without a scope of its own
        # it would contradict it.
        raise FhirRefused([(where, "a nested provision needs data or a code")])
    drafts = [Draft(where=where, patient=patient, purpose=purpose, decision=decision,
                    scope_kind=kind, scope_value=value, effective_from=start, expires_at=end,
                    **common)
              for purpose in purposes for kind, value in (scopes or [(ScopeKind.ALL, "")])]
    for index, nested in enumerate(provision.provision or []):
        drafts += _provision_drafts(
            nested, f"{where}.provision[{index}]", patient=patient, purposes=purposes,
            decision=None, start=start, end=end, nested=True, parent_scoped=bool(scopes),
            common=common, tree=tree)
    return drafts


def consent_drafts(resource: dict, where: str, patients: dict[str, dict], *,
                   default_purpose: Purpose | None, tree: PurposeTree) -> list[Draft]:
    try:
        consent = Consent.model_validate(resource)
    except pydantic.ValidationError as exc:
        raise FhirRefused([(_path(where, error["loc"]), error["msg"])
                           for error in exc.errors()[:20]]) from None
    if consent.status != "active":
        raise FhirRefused([(f"{where}.status", f"only active consents are imported, not "
                                               f"{consent.status!r}")])
    scope_codes = {c.code for c in (consent.scope.coding or [])} if consent.scope else set()
    if not scope_codes & ACCEPTED_SCOPES:
        raise FhirRefused([(f"{where}.scope", "expected patient-privacy or research")])
    if consent.provision is None:
        raise FhirRefused([(f"{where}.provision", "a consent without a provision decides "
                                                  "nothing")])
    rule = {c.code for c in (consent.policyRule.coding or [])} if consent.policyRule else set()
    decision = "permit" if "OPTIN" in rule else "deny" if "OPTOUT" in rule else None
    proxy_name, relationship = _performer(consent, where)
    witness = next((e.valueString for e in consent.extension or []
                    if e.url == WITNESS_URL and e.valueString), "")
    return _provision_drafts(
        consent.provision, f"{where}.provision", patient=_patient(consent, where, patients),
        purposes=[default_purpose] if default_purpose else [], decision=decision,
        start=_when(consent.dateTime, f"{where}.dateTime"), end=None, nested=False,
        parent_scoped=False,
        common={"proxy_name": proxy_name, "proxy_relationship": relationship,
                "witness": witness[:200]}, tree=tree)


def consent_fhir_import(*, document: Any, actor: Actor,
                        default_purpose: str = "") -> list[ConsentRecord]:
    """Import every Consent of ``document``, all or nothing. Raises FhirRefused."""
    tree = PurposeTree.load()
    fallback = None
    if default_purpose:
        try:
            fallback = tree.get(default_purpose)
        except LookupError:
            raise FhirRefused([("", f"unknown default purpose {default_purpose!r}")]) from None
    consents, patients = consents_in(document)
    drafts: list[Draft] = []
    for where, resource in consents:
        drafts += consent_drafts(resource, where, patients, default_purpose=fallback,
                                 tree=tree)
    form = selectors.current_form()
    records = []
    with transaction.atomic():
        for draft in drafts:
            try:
                records.append(consent_record(
                    patient=draft.patient, purpose=draft.purpose, decision=draft.decision,
                    actor=actor, source=Source.FHIR, form=form, scope_kind=draft.scope_kind,
                    scope_value=draft.scope_value, effective_from=draft.effective_from,
                    expires_at=draft.expires_at, proxy_name=draft.proxy_name,
                    proxy_relationship=draft.proxy_relationship, witness=draft.witness))
            except ValidationError as exc:
                # Raised inside the transaction: everything written so far rolls back.
                raise FhirRefused([(_element(draft, field), "; ".join(messages))
                                   for field, messages in exc.message_dict.items()]) from None
    return records


def _element(draft: Draft, field: str) -> str:
    """The element a field of consent_record came from."""
    if field == "scope_value":
        return f"{draft.where}.{'data' if draft.scope_kind == ScopeKind.STUDY else 'code'}"
    if field in FIELD_ELEMENTS:
        return f"{draft.where}.{FIELD_ELEMENTS[field]}"
    return draft.where


def _path(where: str, loc: tuple) -> str:
    """A pydantic error location as FHIRPath: ``actor.0.role`` -> ``actor[0].role``."""
    path = where
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not str(part).startswith("function-"):
            path += f".{part}"
    return path
