"""Small builders for consent tests: studies with series, records at chosen times."""

import uuid
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


def make_world(parents: list[int | None], policies: list[str], n_patients: int,
               study_specs: list, *, prefix: str, keep_modality_case: bool = False,
               ) -> tuple[list[Purpose], list[Patient], list[ImagingStudy]]:
    """A generated world's purpose tree, patients and studies (the property tests' shape):
    purpose i's parent is ``parents[i]`` (an earlier purpose, or None); each study spec is
    (patient index, [(modality, body part, description), ...]). ``keep_modality_case``
    stores each modality as given, as some files carry it, instead of upper-cased."""
    tag = uuid.uuid4().hex[:8]
    purposes: list[Purpose] = []
    for i, (parent, policy) in enumerate(zip(parents, policies, strict=True)):
        purposes.append(Purpose.objects.create(
            code=f"{prefix}{i}-{tag}", name=f"Purpose {i}", description="test",
            parent=purposes[parent] if parent is not None else None, default_policy=policy))
    patients = [Patient.objects.create(issuer=tag, mrn=str(i)) for i in range(n_patients)]
    studies = []
    for n, (patient_index, series) in enumerate(study_specs):
        study = ImagingStudy.objects.create(study_uid=f"2.25.{int(tag, 16)}.{n}",
                                            patient=patients[patient_index])
        for m, (modality, body_part, description) in enumerate(series):
            made = make_series(study, f"{study.study_uid}.{m}", modality, body_part,
                               description=description)
            if keep_modality_case:
                Series.objects.filter(pk=made.pk).update(modality=modality)
        studies.append(study)
    return purposes, patients, studies


def make_timed_record(*, patient: Patient, purpose: Purpose, decision: str, scope_kind: str,
                      scope_value: str, recorded: datetime, effective: datetime,
                      expires: datetime | None) -> ConsentRecord:
    """A record at exact instants (the services always use now)."""
    consent_form = form()
    return ConsentRecord.objects.create(
        patient=patient, purpose=purpose, decision=decision, scope_kind=scope_kind,
        scope_value=scope_value, recorded_at=recorded, effective_from=effective,
        expires_at=expires, source="staff", recorded_by_label="test", form=consent_form,
        text_sha256=consent_form.text_sha256)
