"""Which studies a dataset selects, and which of them cannot be made safe to share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date

from django.core.exceptions import ValidationError
from django.db.models import (
    Exists,
    OuterRef,
    Q,
    QuerySet,
)

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
    # Age at the time of the study, kept with the study (the birth date is encrypted) so a
    # selection of millions stays one SQL filter; studies without both dates cannot qualify.
    if low is not None:
        studies = studies.filter(patient_age__gte=int(low))
    if high is not None:
        studies = studies.filter(patient_age__lte=int(high))
    # The export reads each study's patient (pseudonyms, ledger): fetch them together.
    return studies.select_related("patient").order_by("pk")


# Rows a selection is read in, through a server-side cursor on PostgreSQL.
SELECTION_CHUNK = 2000


def iter_selected_studies(selection: dict) -> Iterator[ImagingStudy]:
    """The selected studies in id order, with their patients, a chunk at a time: what a run
    walks instead of a list of every study (the order ``decide_stream`` answers in)."""
    return selected_studies(selection).iterator(chunk_size=SELECTION_CHUNK)


def unsafe_reason(study: ImagingStudy, burned_in: list[str], *, defaced_upstream: bool,
                  redact_text: bool = False, volumes: list[str] | None = None) -> str:
    """Why the study cannot be made safe, or '' if it can (its pixels may still need the
    OCR check: ``needs_pixel_check``). ``burned_in`` holds each instance's
    BurnedInAnnotation value ('' when absent). ``volumes``: the study's entry of
    ``volume_regions``, read for a batch of studies at once; read here when not given."""
    if volumes is None:
        volumes = volume_regions([study.pk]).get(study.pk, [])
    return _unsafe({m for m in study.modalities.split("\\") if m}, burned_in, volumes,
                   defaced_upstream=defaced_upstream, redact_text=redact_text)


def volume_regions(study_ids: Iterable[int]) -> dict[int, list[str]]:
    """{study id: each CT, MR or PT series' anatomy regions} for these studies, in one query
    (a study without such a series is absent): the series facts ``unsafe_reason`` reads,
    for a batch of studies instead of a query each."""
    regions: dict[int, list[str]] = {}
    for study_id, value in Series.objects.filter(
            study_id__in=list(study_ids), modality__in=VOLUME_MODALITIES).values_list(
            "study_id", "anatomy_regions"):
        regions.setdefault(study_id, []).append(value)
    return regions


def needs_pixel_check(study: ImagingStudy, burned_in: list[str]) -> bool:
    """Whether the pixels must be read for burned-in text before the study may leave."""
    return _needs_pixel_check({m for m in study.modalities.split("\\") if m}, burned_in)


def _needs_pixel_check(modalities: set[str], burned_in: list[str]) -> bool:
    return any(value == "YES" for value in burned_in) or bool(
        modalities & BURNED_IN_PRONE and any(value != "NO" for value in burned_in))


# What a selection's studies carry, as columns, for the preview's counts (``safety_columns``).
SAFETY_FLAGS = ("flag_sr", "flag_prone", "flag_yes", "flag_not_no", "flag_head_volume",
                "flag_unknown_volume")


def safety_columns(studies: QuerySet[ImagingStudy]) -> QuerySet[ImagingStudy]:
    """The studies with one boolean column per fact the safety rules read (SAFETY_FLAGS),
    computed by the database from what registration stored, so a million studies can be
    counted by their facts without one reaching Python (``safety_verdict`` reads them)."""
    # Modalities from the series (what ``study.modalities`` is denormalised from): a hashed
    # look-up the database runs once, where matching the text column took dozens of LIKEs a
    # study.
    series = Series.objects.filter(study=OuterRef("pk"))
    instances = Instance.objects.filter(series__study=OuterRef("pk"))
    volumes = series.filter(modality__in=VOLUME_MODALITIES)
    return studies.annotate(
        flag_sr=Exists(series.filter(modality="SR")),
        flag_prone=Exists(series.filter(modality__in=BURNED_IN_PRONE)),
        flag_yes=Exists(instances.filter(burned_in_annotation="YES")),
        flag_not_no=Exists(instances.exclude(burned_in_annotation="NO")),
        flag_head_volume=Exists(volumes.filter(anatomy_regions__contains="|HEAD|")),
        flag_unknown_volume=Exists(volumes.filter(anatomy_regions="")),
    )


def safety_verdict(flags: tuple, *, defaced_upstream: bool, redact_text: bool = False
                   ) -> tuple[str, bool]:
    """(why the study cannot be made safe or '', whether its pixels need the OCR check)
    from the SAFETY_FLAGS values, by the same rule as ``unsafe_reason``."""
    sr, prone, yes, not_no, head_volume, unknown_volume = (bool(f) for f in flags)
    reason = _unsafe_facts(yes, sr, head_volume, unknown_volume,
                           defaced_upstream=defaced_upstream, redact_text=redact_text)
    return reason, not reason and (yes or (prone and not_no))


def unsafe_reasons(studies: QuerySet[ImagingStudy], *, defaced_upstream: bool,
                   redact_text: bool = False) -> tuple[dict[int, str], set[int]]:
    """{study id: reason} for the studies that cannot be made safe, and the ids of the others
    whose pixels a run will read, from the database's SAFETY_FLAGS: one query, streamed.
    Holds every refused id: for bounded sets; a preview counts with ``safety_columns``."""
    unsafe: dict[int, str] = {}
    to_check: set[int] = set()
    rows = safety_columns(studies).order_by("pk").values_list("pk", *SAFETY_FLAGS)
    for pk, *flags in rows.iterator(chunk_size=SELECTION_CHUNK):
        reason, check = safety_verdict(tuple(flags), defaced_upstream=defaced_upstream,
                                       redact_text=redact_text)
        if reason:
            unsafe[pk] = reason
        elif check:
            to_check.add(pk)
    return unsafe, to_check


def _unsafe(modalities: set[str], burned_in: list[str], volume_regions: list[str], *,
            defaced_upstream: bool, redact_text: bool = False) -> str:
    """The rule itself, written once. ``volume_regions``: each CT, MR or PT series' regions
    as registration read them ('' when its anatomy is unknown). Images that may carry
    burned-in text are not refused here: a run reads their pixels (datasets/burned_in.py)."""
    return _unsafe_facts(any(value == "YES" for value in burned_in), "SR" in modalities,
                         any("|HEAD|" in regions for regions in volume_regions),
                         any(not regions for regions in volume_regions),
                         defaced_upstream=defaced_upstream, redact_text=redact_text)


def _unsafe_facts(burned_in_yes: bool, structured_report: bool, head_volume: bool,
                  unknown_volume: bool, *, defaced_upstream: bool, redact_text: bool) -> str:
    """The rule on the facts it reads, shared by one study and the SQL-counted preview."""
    if burned_in_yes and not redact_text:
        return "burned-in annotation: the pixels carry text"
    if structured_report:
        return "structured report with free text (Clean Structured Content is not applied)"
    if not defaced_upstream:
        # A volume whose anatomy is unknown may be a head, so it fails closed.
        if head_volume:
            return "3D head study: a face could be reconstructed, and defacing was not recorded"
        if unknown_volume:
            return ("3D study whose anatomy is not recorded: it may show a face, and defacing "
                    "was not recorded")
    return ""
