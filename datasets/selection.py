"""Which studies a dataset selects, and which of them cannot be made safe to share."""

from __future__ import annotations

from datetime import date

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from registry.models import ImagingStudy, Instance, Series

# Modalities whose images often carry burned-in text (names, dates) in the pixels.
BURNED_IN_PRONE = {"US", "SC", "OT", "XA", "XC", "ES", "GM", "SM", "DOC"}
VOLUME_MODALITIES = {"CT", "MR", "PT"}


QUERY_KEYS = ("modality", "body_part", "date_from", "date_to", "min_age", "max_age")
MAX_UIDS = 100_000


def selection_clean(selection: object) -> dict:
    """The selection in its stored form, or ValidationError({"selection": why})."""
    def refuse(why: str) -> ValidationError:
        return ValidationError({"selection": why})

    if not isinstance(selection, dict):
        raise refuse("a selection is an object: study_uids, or a query")
    unknown = set(selection) - {"study_uids", *QUERY_KEYS}
    if unknown:
        raise refuse(f"unknown keys {sorted(unknown)}")
    given = {k: v for k, v in selection.items() if v not in (None, "", [])}
    if "study_uids" in given:
        uids = given["study_uids"]
        if set(given) != {"study_uids"}:
            raise refuse("select by study_uids or by a query, not both")
        if (not isinstance(uids, list) or len(uids) > MAX_UIDS or not all(
                isinstance(u, str) and 0 < len(u) <= 64 and u.replace(".", "").isdigit()
                for u in uids)):
            raise refuse(f"study_uids is a list of up to {MAX_UIDS:,} StudyInstanceUIDs")
        return {"study_uids": sorted(set(uids))}
    if not given:
        raise refuse("select studies by UID or by a query")
    clean: dict = {}
    for key in ("modality", "body_part"):
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not value.isalnum() or len(value) > 16:
                raise refuse(f"{key} is a DICOM code such as CT or CHEST")
            clean[key] = value.upper()
    for key in ("date_from", "date_to"):
        if key in given:
            try:
                clean[key] = date.fromisoformat(str(given[key])).isoformat()
            except ValueError:
                raise refuse(f"{key} is a date, YYYY-MM-DD") from None
    if clean.get("date_from", "") > clean.get("date_to", "9999"):
        raise refuse("date_from is after date_to")
    for key in ("min_age", "max_age"):
        if key in given:
            value = given[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 150:
                raise refuse(f"{key} is a whole number of years, 0 to 150")
            clean[key] = value
    if clean.get("min_age", 0) > clean.get("max_age", 150):
        raise refuse("min_age is above max_age")
    return clean


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
        # The tag as written, or a region the series' anatomy lies in (read at registration
        # from the tag, region codes or descriptions): "HEAD" also selects a BRAIN series.
        part = selection["body_part"].upper()
        studies = studies.filter(pk__in=Series.objects.filter(
            Q(body_part=part) | Q(anatomy_regions__contains=f"|{part}|")).values("study_id"))
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


def unsafe_reason(study: ImagingStudy, burned_in: list[str], *, defaced_upstream: bool,
                  redact_text: bool = False) -> str:
    """Why the study cannot be made safe, or '' if it can (its pixels may still need the
    OCR check: ``needs_pixel_check``). ``burned_in`` holds each instance's
    BurnedInAnnotation value ('' when absent)."""
    volumes = [regions for modality, regions in study.series.values_list(
        "modality", "anatomy_regions") if modality in VOLUME_MODALITIES]
    return _unsafe({m for m in study.modalities.split("\\") if m}, burned_in, volumes,
                   defaced_upstream=defaced_upstream, redact_text=redact_text)


def needs_pixel_check(study: ImagingStudy, burned_in: list[str]) -> bool:
    """Whether the pixels must be read for burned-in text before the study may leave."""
    return _needs_pixel_check({m for m in study.modalities.split("\\") if m}, burned_in)


def _needs_pixel_check(modalities: set[str], burned_in: list[str]) -> bool:
    return any(value == "YES" for value in burned_in) or bool(
        modalities & BURNED_IN_PRONE and any(value != "NO" for value in burned_in))


def unsafe_reasons(studies: QuerySet[ImagingStudy], *, defaced_upstream: bool,
                   redact_text: bool = False) -> tuple[dict[int, str], set[int]]:
    """The same rules for many studies at once, from what registration stored (no file is
    opened): {study id: reason} for those that cannot be made safe, and the ids of the
    others whose pixels a run will read for burned-in text."""
    ids = studies.values("pk")
    modalities = dict(ImagingStudy.objects.filter(pk__in=ids).values_list("pk", "modalities"))
    burned: dict[int, list[str]] = {}
    for study_id, value in Instance.objects.filter(series__study__in=ids).values_list(
            "series__study_id", "burned_in_annotation"):
        burned.setdefault(study_id, []).append(value)
    volumes: dict[int, list[str]] = {}
    for study_id, regions in Series.objects.filter(
            study__in=ids, modality__in=VOLUME_MODALITIES).values_list("study_id",
                                                                       "anatomy_regions"):
        volumes.setdefault(study_id, []).append(regions)
    kinds = {pk: {m for m in text.split("\\") if m} for pk, text in modalities.items()}
    found = {pk: _unsafe(kinds[pk], burned.get(pk, []), volumes.get(pk, []),
                         defaced_upstream=defaced_upstream, redact_text=redact_text)
             for pk in kinds}
    unsafe = {pk: reason for pk, reason in found.items() if reason}
    to_check = {pk for pk in kinds if pk not in unsafe
                and _needs_pixel_check(kinds[pk], burned.get(pk, []))}
    return unsafe, to_check


def _unsafe(modalities: set[str], burned_in: list[str], volume_regions: list[str], *,
            defaced_upstream: bool, redact_text: bool = False) -> str:
    """The rule itself, written once. ``volume_regions``: each CT, MR or PT series' regions
    as registration read them ('' when its anatomy is unknown). Images that may carry
    burned-in text are not refused here: a run reads their pixels (datasets/burned_in.py)."""
    if any(value == "YES" for value in burned_in) and not redact_text:
        return "burned-in annotation: the pixels carry text"
    if "SR" in modalities:
        return "structured report with free text (Clean Structured Content is not applied)"
    if not defaced_upstream:
        # A volume whose anatomy is unknown may be a head, so it fails closed.
        if any("|HEAD|" in regions for regions in volume_regions):
            return "3D head study: a face could be reconstructed, and defacing was not recorded"
        if any(not regions for regions in volume_regions):
            return ("3D study whose anatomy is not recorded: it may show a face, and defacing "
                    "was not recorded")
    return ""
