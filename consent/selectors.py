"""Reads and access checks. "Not yours" answers exactly like "does not exist" (404)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

from audit.models import AuditEvent
from audit.selectors import DISCLOSURE_ACTIONS
from consent.engine import (
    ConsentDecision,
    PurposeTree,
    decide,
    decide_in_general,
    decide_many,
    scope_matches,
)
from consent.models import ConsentForm, ConsentRecord, Guardianship, Purpose
from registry import vocabulary
from registry.models import ImagingStudy, Patient, Series

# The patient sees exactly what the auditors' accounting of disclosures lists.
# The patient sees what the auditors' accounting of disclosures lists, and also when their
# scans were withdrawn from a dataset and when the recipient confirmed deleting them.
WITHDRAWAL_ACTIONS = ("dataset.withdrawal_notice", "dataset.withdrawal_confirmed")
USE_ACTIONS = (*DISCLOSURE_ACTIONS, *WITHDRAWAL_ACTIONS)


def patients_for_user(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Patient]:
    """The patient records a portal user may act for: their own and their dependants'."""
    if not user.is_authenticated:
        return Patient.objects.none()
    return Patient.objects.filter(Q(user=user) | Q(guardians__user=user)).distinct()


def patient_for_user(user: AbstractBaseUser | AnonymousUser, patient_id: int) -> Patient:
    patient = patients_for_user(user).filter(pk=patient_id).first()
    if patient is None:
        raise Http404("No such patient.")
    return patient


def guardianship(user: AbstractBaseUser, patient: Patient) -> Guardianship | None:
    """Set when the user acts for someone else; None when the patient is the user."""
    if patient.user_id == user.pk:
        return None
    return Guardianship.objects.filter(patient=patient, user=user).first()


# Kinds of scan offered to every patient, besides those among their own series.
COMMON_MODALITIES = ("CT", "MR", "XRAY", "US", "MG", "PT", "NM")


def scan_kinds(patient: Patient) -> dict[str, list[tuple[str, str]]]:
    """The choices an exception may name, as (code, words): the kinds of scan among the
    patient's series and the common ones, and every body region. Only vocabulary codes, so
    every pair of "for" and "which" the portal offers is one the engine can match."""
    known = vocabulary.modalities()
    own = {m.upper() for m in Series.objects.filter(study__patient=patient)
           .values_list("modality", flat=True)}
    codes = [c for c in COMMON_MODALITIES if c in known]
    codes += sorted(c for c in own if c in known and c not in codes)
    return {"modalities": [(c, known[c]) for c in codes],
            "body_parts": list(vocabulary.regions().items())}


def scope_terms() -> dict[str, list[tuple[str, str]]]:
    """Every code staff may type for a scope, with its words (the desk's suggestions)."""
    return {"scope_modalities": sorted(vocabulary.modalities().items()),
            "scope_regions": list(vocabulary.regions().items())}


def scans_covered(patient: Patient, *, scope_kind: str, scope_value: str, decision: str
                  ) -> list[tuple[ImagingStudy, bool]]:
    """The patient's studies a choice with this (canonical) scope would cover today, each
    with whether it is covered only because its anatomy is not recorded."""
    covered = []
    for study in patient.studies.prefetch_related("series").order_by("-study_date", "pk"):
        series = list(study.series.all())
        matches, unsure = scope_matches(
            scope_kind, scope_value, decision, study.study_uid,
            {s.modality.upper() for s in series},
            [frozenset(r for r in s.anatomy_regions.split("|") if r) for s in series])
        if matches:
            covered.append((study, unsure))
    return covered


def current_form(code: str = "imaging-use") -> ConsentForm:
    return ConsentForm.objects.filter(code=code).order_by("-version").first()


def consent_form_by_id(form_id: int) -> ConsentForm:
    """Any published version of any consent text; the texts are not secret, a missing one
    is a 404."""
    form = ConsentForm.objects.filter(pk=form_id).first()
    if form is None:
        raise Http404("no such consent text")
    return form


def consent_form(*, version: int | None, code: str = "imaging-use") -> ConsentForm | None:
    """A given version of the form, or the current one when no version is given."""
    if version is None:
        return current_form(code)
    return ConsentForm.objects.filter(code=code, version=version).first()


@dataclass(frozen=True)
class PurposeChoice:
    purpose: Purpose
    depth: int
    decision: ConsentDecision
    own_record: ConsentRecord | None  # the patient's own all-scans record for this purpose


def purpose_choices(patient: Patient, at: datetime) -> list[PurposeChoice]:
    """Each purpose, in tree order, with what applies to the patient's scans in general."""
    tree = PurposeTree.load()
    own = live_records(patient, at)
    choices = []
    for purpose in _tree_order(tree):
        choices.append(PurposeChoice(
            purpose=purpose, depth=len(tree.lineage(purpose)) - 1,
            decision=decide_in_general(patient.pk, purpose, at, tree=tree),
            own_record=own.get((purpose.pk, "all", "")),
        ))
    return choices


def exceptions(patient: Patient, at: datetime) -> list[ConsentRecord]:
    """The patient's choices in force for one study or one kind of scan."""
    return sorted((r for key, r in live_records(patient, at).items() if key[1] != "all"),
                  key=lambda r: (r.purpose.position, r.scope_kind, r.scope_value))


def live_records(patient: Patient, at: datetime) -> dict[tuple, ConsentRecord]:
    newest: dict[tuple, ConsentRecord] = {}
    for record in (ConsentRecord.objects.filter(patient=patient, recorded_at__lte=at,
                                                effective_from__lte=at)
                   .select_related("purpose", "form").order_by("recorded_at", "id")):
        newest[(record.purpose_id, record.scope_kind, record.scope_value)] = record
    return {key: r for key, r in newest.items() if r.expires_at is None or r.expires_at > at}


def _tree_order(tree: PurposeTree) -> list[Purpose]:
    children: dict[int | None, list[Purpose]] = {}
    for purpose in sorted(tree.by_id.values(), key=lambda p: (p.position, p.code)):
        children.setdefault(purpose.parent_id, []).append(purpose)
    ordered: list[Purpose] = []

    def walk(parent_id: int | None) -> None:
        for purpose in children.get(parent_id, []):
            ordered.append(purpose)
            walk(purpose.pk)

    walk(None)
    return ordered


def scans_with_decisions(patient: Patient, at: datetime
                         ) -> tuple[list[ImagingStudy], list[Purpose], dict]:
    """The patient's studies and, per purpose, what is allowed now: {(study, purpose): ...}."""
    tree = PurposeTree.load()
    purposes = _tree_order(tree)
    studies = list(patient.studies.prefetch_related("series")
                   .order_by("-study_date", "study_uid"))
    grid = {}
    for purpose in purposes:
        for study_id, result in decide_many(patient.studies.all(), purpose, at,
                                            tree=tree).items():
            grid[(study_id, purpose.pk)] = result
    return studies, purposes, grid


def study_decisions(study: ImagingStudy, at: datetime) -> list[tuple[Purpose, ConsentDecision]]:
    tree = PurposeTree.load()
    return [(purpose, decide(study, purpose, at, tree=tree)) for purpose in _tree_order(tree)]


def patient_history(patient: Patient) -> QuerySet[ConsentRecord]:
    return (ConsentRecord.objects.filter(patient=patient).select_related("purpose", "form")
            .order_by("-recorded_at", "-id"))


def patient_uses(patient: Patient) -> QuerySet[AuditEvent]:
    # Served by the index audit_event_patient (patient_ref, -id).
    return (AuditEvent.objects.filter(patient_ref=str(patient.pk), action__in=USE_ACTIONS)
            .order_by("-id"))


def needs_review(patient: Patient, at: datetime | None = None) -> bool:
    """True when a choice in force was made under an older version of the consent text."""
    form = current_form()
    if form is None:
        return False
    return any(r.form_id != form.pk and r.form.code == form.code and r.form.version < form.version
               for r in live_records(patient, at or timezone.now()).values())


def records_outside_vocabulary() -> list[tuple[ConsentRecord, str]]:
    """Records whose scope value no vocabulary code (or study of the patient) explains,
    with why: written before the vocabulary's constraint, or under an older edition of it.
    Reads modality and body-part records, and study records whose study is not the
    patient's."""
    known = {"modality": set(vocabulary.modalities()), "body_part": set(vocabulary.regions())}
    found = []
    for record in (ConsentRecord.objects.exclude(scope_kind="all").select_related("patient")
                   .order_by("id").iterator()):
        if record.scope_kind == "study":
            if not ImagingStudy.objects.filter(patient_id=record.patient_id,
                                               study_uid=record.scope_value).exists():
                found.append((record, "no such study for this patient"))
        elif record.scope_value not in known.get(record.scope_kind, set()):
            found.append((record, f"not a known {record.scope_kind.replace('_', ' ')} code"))
    return found
