"""Consent checks asked by people and systems: decide, then write down what was answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from audit import codes, ledger
from audit.ledger import Actor
from consent.engine import ConsentDecision, PurposeTree, decide_many
from registry.models import ImagingStudy, Patient

MAX_STUDIES = 10_000


@dataclass(frozen=True)
class CheckAnswer:
    study_uid: str
    patient_id: int
    decision: ConsentDecision


@dataclass(frozen=True)
class CheckResult:
    purpose_code: str
    at: datetime
    answers: list[CheckAnswer]
    unknown: list[str]


@transaction.atomic
def consent_check(*, purpose_code: str, at: datetime, actor: Actor,
                  study_uids: list[str] | None = None, patient: Patient | None = None,
                  ) -> CheckResult:
    """Answer for each study (by UID, or all of one patient's) and record one ledger event
    that lists every study answered, so an auditor finds each of them."""
    tree = PurposeTree.load()
    purpose = tree.get(purpose_code)  # LookupError for an unknown purpose
    if patient is not None:
        studies = ImagingStudy.objects.filter(patient=patient)
    else:
        studies = ImagingStudy.objects.filter(study_uid__in=study_uids or [])
    known = dict(studies.values_list("pk", "study_uid"))
    patients = dict(studies.values_list("pk", "patient_id"))
    decisions = decide_many(studies, purpose, at, tree=tree)
    answers = sorted((CheckAnswer(known[pk], patients[pk], result)
                      for pk, result in decisions.items()), key=lambda a: a.study_uid)
    asked = list(dict.fromkeys(study_uids or []))
    unknown = [uid for uid in asked if uid not in set(known.values())]
    single_patient = {a.patient_id for a in answers}
    ledger.record(
        action="consent.checked", event_code=codes.QUERY, actor=actor,
        purpose_code=purpose.code,
        patient_ref=next(iter(single_patient)) if len(single_patient) == 1 else "",
        study_uid=answers[0].study_uid if len(answers) == 1 else "",
        details={
            "at": at.isoformat(),
            "allowed_count": sum(1 for a in answers if a.decision.allowed),
            "denied_count": sum(1 for a in answers if not a.decision.allowed),
            "allowed": [a.study_uid for a in answers if a.decision.allowed],
            "denied": [a.study_uid for a in answers if not a.decision.allowed],
            "unknown": unknown,
        },
    )
    return CheckResult(purpose_code=purpose.code, at=at, answers=answers, unknown=unknown)
