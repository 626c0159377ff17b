"""Reads of the registry: finding patients and studies. Access helpers answer "not yours"
exactly like "does not exist" (404)."""

from __future__ import annotations

from datetime import date

from django.db.models import Q, QuerySet
from django.http import Http404

from registry.models import ImagingStudy, Patient, Series


def study_for_patient(patient: Patient, study_id: int) -> ImagingStudy:
    study = ImagingStudy.objects.filter(patient=patient, pk=study_id).first()
    if study is None:
        raise Http404("No such study.")
    return study


def patient_search(*, query: str = "", mrn: str = "", issuer: str = "") -> QuerySet[Patient]:
    """Staff look-up: by MRN (exact), name (contains), accession or StudyInstanceUID."""
    patients = Patient.objects.order_by("issuer", "mrn")
    if mrn:
        patients = patients.filter(mrn=mrn)
    if issuer:
        patients = patients.filter(issuer=issuer)
    query = query.strip()
    if query:
        patients = patients.filter(
            Q(mrn=query) | Q(name__icontains=query.replace(" ", "^"))
            | Q(name__icontains=query)
            | Q(studies__accession_number=query) | Q(studies__study_uid=query)).distinct()
    return patients


def study_search(*, mrn: str = "", issuer: str = "", accession: str = "", study_uid: str = "",
                 date_from: date | None = None, date_to: date | None = None,
                 modality: str = "") -> QuerySet[ImagingStudy]:
    wanted = {"patient__mrn": mrn, "patient__issuer": issuer, "accession_number": accession,
              "study_uid": study_uid, "study_date__gte": date_from, "study_date__lte": date_to}
    studies = (ImagingStudy.objects.select_related("patient")
               .filter(**{lookup: value for lookup, value in wanted.items() if value})
               .order_by("-study_date", "pk"))
    if modality:
        studies = studies.filter(
            pk__in=Series.objects.filter(modality=modality.upper()).values("study_id"))
    return studies


def patient_by_identifier(*, issuer: str, mrn: str) -> Patient | None:
    """The registered patient with this MRN from this issuer, or None. The one place other
    apps find a patient by MRN (FHIR Consent import), so how MRNs are stored can change
    here alone."""
    return Patient.objects.filter(issuer=issuer, mrn=mrn).first()
