"""Reads of the registry: finding patients and studies. Access helpers answer "not yours"
exactly like "does not exist" (404)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from registry.identifiers import (
    MAX_TERM,
    accession_digest,
    blind,
    mrn_digest,
    query_digests,
    search_term,
)
from registry.models import ImagingStudy, Patient, PatientSearchKey, Series


def study_for_patient(patient: Patient, study_id: int) -> ImagingStudy:
    study = ImagingStudy.objects.filter(patient=patient, pk=study_id).first()
    if study is None:
        raise Http404("No such study.")
    return study


class SearchTermError(ValueError):
    """A search term that cannot find anything: said plainly instead of an empty list."""


def _term(value: str, *, what: str) -> str:
    value = value.strip()
    if len(value) > MAX_TERM:
        raise SearchTermError(f"{what} is too long ({len(value)} characters; at most "
                              f"{MAX_TERM}).")
    if "\x00" in value:
        raise SearchTermError(f"{what} contains a NUL character.")
    return value


def patients_by_mrn(mrn: str, *, issuer: str = "") -> QuerySet[Patient]:
    """Patients with this MRN (case and spaces ignored), through the search keys' index."""
    found = Patient.objects.filter(pk__in=PatientSearchKey.objects.filter(
        digest=blind("mrn-search", search_term(mrn))).values("patient_id"))
    return found.filter(issuer=issuer) if issuer else found


def patient_search(*, query: str = "", mrn: str = "", issuer: str = "") -> QuerySet[Patient]:
    """Staff look-up. ``query`` finds by MRN (whole, or its first 4 characters or more),
    by name (every word given, in any order: "Taylor Dunmere", "Dunmere, Taylor",
    "Dunmere^Taylor"), by accession number or by StudyInstanceUID; ``mrn`` by whole MRN.
    Case and accents do not matter. Every identifier is matched through its blind index
    (registry/identifiers.py), so each term is one index probe. Newest patients first.

    Raises SearchTermError for a term too long to match anything."""
    query = _term(query, what="The search term")
    mrn = _term(mrn, what="The MRN")
    patients = Patient.objects.order_by("-created_at", "-id")
    if mrn:
        patients = patients.filter(pk__in=patients_by_mrn(mrn).values("pk"))
    if issuer:
        patients = patients.filter(issuer=issuer)
    if query:
        digests = query_digests(query)
        keys = [d for d in (digests["mrn"], digests["mrn_prefix"]) if d]
        by_key = PatientSearchKey.objects.filter(digest__in=keys).values("patient_id")
        by_study = ImagingStudy.objects.filter(
            Q(accession_index=digests["accession"]) | Q(study_uid=query)).values("patient_id")
        matches = Q(pk__in=by_key) | Q(pk__in=by_study)
        words = digests["name_words"]
        if words:
            # Every word of the name must be one of the patient's (any order).
            by_name = (PatientSearchKey.objects.filter(digest__in=words)
                       .values("patient_id").annotate(n=Count("digest", distinct=True))
                       .filter(n=len(words)).values("patient_id"))
            matches |= Q(pk__in=by_name)
        patients = patients.filter(matches)
    return patients


def patients_sorted_by_name(patients: Iterable[Patient]) -> list[Patient]:
    """A bounded page of patients in the order a person reads a list of names: by family
    name, then given name (decrypted here; SQL sees only ciphertext)."""
    return sorted(patients, key=lambda p: (p.name.casefold().split("^") if p.name else ["~"],
                                           p.mrn))


def study_search(*, mrn: str = "", issuer: str = "", accession: str = "", study_uid: str = "",
                 date_from: date | None = None, date_to: date | None = None,
                 modality: str = "") -> QuerySet[ImagingStudy]:
    """Raises SearchTermError for a term too long to match anything."""
    mrn = _term(mrn, what="The MRN")
    accession = _term(accession, what="The accession number")
    wanted = {"patient__issuer": issuer, "study_uid": study_uid,
              "accession_index": accession_digest(accession) if accession else "",
              "study_date__gte": date_from, "study_date__lte": date_to}
    studies = (ImagingStudy.objects.select_related("patient")
               .filter(**{lookup: value for lookup, value in wanted.items() if value})
               .order_by("-study_date", "pk"))
    if mrn:
        studies = studies.filter(patient__in=patients_by_mrn(mrn).values("pk"))
    if modality:
        studies = studies.filter(
            pk__in=Series.objects.filter(modality=modality.upper()).values("study_id"))
    return studies


def patient_by_identifier(*, issuer: str, mrn: str) -> Patient | None:
    """The registered patient with this MRN from this issuer, or None. The one place other
    apps find a patient by MRN (FHIR Consent import), so how MRNs are stored can change
    here alone."""
    if "\x00" in issuer:
        # No issuer holds a NUL, and PostgreSQL refuses to compare one (a 500).
        return None
    return Patient.objects.filter(issuer=issuer, mrn_index=mrn_digest(mrn)).first()
