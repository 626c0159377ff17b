"""Small builders for consent tests: studies with series, records at chosen times."""

from datetime import datetime, timedelta
from itertools import count

from consent.models import ConsentForm, ConsentRecord, Purpose
from registry.models import ImagingStudy, Patient, Series
from registry.vocabulary import anatomy_of

_numbers = count(1)


def at(days: float) -> datetime:
    """A fixed moment plus some days, so tests read as a timeline."""
    from datetime import UTC

    return datetime(2026, 6, 1, 12, 0, tzinfo=UTC) + timedelta(days=days)


def make_patient(mrn: str | None = None) -> Patient:
    return Patient.objects.create(issuer="LOCAL", mrn=mrn or f"P{next(_numbers)}")


def make_study(patient: Patient, *series: tuple[str, str]) -> ImagingStudy:
    """A study with one series per (modality, body part)."""
    n = next(_numbers)
    study = ImagingStudy.objects.create(study_uid=f"1.2.826.0.1.{n}", patient=patient)
    for index, (modality, body_part) in enumerate(series or [("CT", "CHEST")]):
        make_series(study, f"1.2.826.0.1.{n}.{index}", modality, body_part)
    return study


def make_series(study: ImagingStudy, series_uid: str, modality: str, body_part: str, *,
                description: str = "") -> Series:
    """A series whose anatomy is read the way registration reads it."""
    anatomy = anatomy_of(body_part=body_part, texts=[description])
    return Series.objects.create(series_uid=series_uid, study=study, modality=modality,
                                 body_part=body_part.upper(), description=description,
                                 anatomy=anatomy.label, anatomy_source=anatomy.source,
                                 anatomy_regions=anatomy.stored_regions)


def purpose(code: str) -> Purpose:
    return Purpose.objects.get(code=code)


def form() -> ConsentForm:
    return ConsentForm.objects.get(code="imaging-use", version=1)


def make_record(patient: Patient, purpose_code: str, decision: str, *, scope_kind: str = "all",
                scope_value: str = "", recorded: float = 0, effective: float | None = None,
                expires: float | None = None) -> ConsentRecord:
    """A record as if made at day ``recorded`` (the services always use now)."""
    consent_form = form()
    return ConsentRecord.objects.create(
        patient=patient, purpose=purpose(purpose_code), decision=decision,
        scope_kind=scope_kind, scope_value=scope_value, recorded_at=at(recorded),
        effective_from=at(recorded if effective is None else effective),
        expires_at=None if expires is None else at(expires), source="staff",
        recorded_by_label="test", form=consent_form, text_sha256=consent_form.text_sha256)


def today() -> float:
    """Now, on the ``at(days)`` timeline."""
    from django.utils import timezone

    return (timezone.now() - at(0)).total_seconds() / 86400
