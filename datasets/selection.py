"""Which studies a dataset selects, and which of them cannot be made safe to share."""

from __future__ import annotations

from datetime import date

from django.db.models import QuerySet

from consent.models import ImagingStudy, Series

# Modalities whose images often carry burned-in text (names, dates) in the pixels.
BURNED_IN_PRONE = {"US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC"}
HEAD_PARTS = {"HEAD", "BRAIN", "FACE", "SKULL", "HEADNECK", "ORBIT"}
VOLUME_MODALITIES = {"CT", "MR", "PT"}


def selected_studies(selection: dict) -> QuerySet[ImagingStudy]:
    """Explicit StudyInstanceUIDs, or a query on modality, body part, dates, patient age."""
    studies = ImagingStudy.objects.all()
    if "study_uids" in selection:
        return (studies.filter(study_uid__in=selection["study_uids"])
                .select_related("patient").order_by("pk"))
    if selection.get("modality"):
        studies = studies.filter(pk__in=Series.objects.filter(
            modality=selection["modality"].upper()).values("study_id"))
    if selection.get("body_part"):
        studies = studies.filter(pk__in=Series.objects.filter(
            body_part=selection["body_part"].upper()).values("study_id"))
    if selection.get("date_from"):
        studies = studies.filter(study_date__gte=date.fromisoformat(selection["date_from"]))
    if selection.get("date_to"):
        studies = studies.filter(study_date__lte=date.fromisoformat(selection["date_to"]))
    low, high = selection.get("min_age"), selection.get("max_age")
    if low is not None or high is not None:
        # Age at the time of the study; studies without both dates cannot qualify.
        ids = [s.pk for s in studies.exclude(patient__birth_date__isnull=True)
               .exclude(study_date__isnull=True).select_related("patient")
               if (low is None or _age(s) >= int(low)) and (high is None or _age(s) <= int(high))]
        studies = ImagingStudy.objects.filter(pk__in=ids)
    # The export reads each study's patient (pseudonyms, ledger): fetch them together.
    return studies.select_related("patient").order_by("pk")


def _age(study: ImagingStudy) -> int:
    born, on = study.patient.birth_date, study.study_date
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def unsafe_reason(study: ImagingStudy, burned_in: list[str], *, defaced_upstream: bool
                  ) -> str:
    """Why the study cannot be made safe by header de-identification, or '' if it can.
    ``burned_in`` holds each instance's BurnedInAnnotation value ('' when absent)."""
    modalities = {m for m in study.modalities.split("\\") if m}
    parts = {b for b in study.body_parts.split("\\") if b}
    if any(value == "YES" for value in burned_in):
        return "burned-in annotation: the pixels carry text"
    if modalities & BURNED_IN_PRONE and any(value != "NO" for value in burned_in):
        return (f"{'/'.join(sorted(modalities & BURNED_IN_PRONE))} images may carry burned-in "
                "text and do not say they do not")
    if "SR" in modalities:
        return "structured report with free text (Clean Structured Content is not applied)"
    if modalities & VOLUME_MODALITIES and parts & HEAD_PARTS and not defaced_upstream:
        return "3D head study: a face could be reconstructed, and defacing was not recorded"
    return ""
