"""Consent checks asked by people and systems: decide, then write down what was answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from audit import codes, ledger
from audit.ledger import Actor
from consent.engine import ConsentDecision, cached_purpose_tree, decide_stream
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


def consent_check(*, purpose_code: str, at: datetime, actor: Actor,
                  study_uids: list[str] | None = None, patient: Patient | None = None,
                  ) -> CheckResult:
    """Answer for each study (by UID, or all of one patient's) and record one ledger event
    that lists every study answered, so an auditor finds each of them.

    The hot path of the API: the purpose tree comes from the process's cache, and one
    statement returns each study's decision with its UID and patient, so a check costs that
    statement and the ledger append. Not wrapped in a transaction of its own: the decision
    is one read, and ``ledger.record`` opens the transaction that writes the event, so the
    check pays no savepoint round trips. Inside a caller's transaction it joins that one."""
    tree = cached_purpose_tree(purpose_code)
    purpose = tree.get(purpose_code)  # LookupError for an unknown purpose
    if patient is not None:
        studies = ImagingStudy.objects.filter(patient=patient)
    else:
        studies = ImagingStudy.objects.filter(study_uid__in=study_uids or [])
    answers = sorted((CheckAnswer(d.study_uid, d.patient_id, d.decision)
                      for d in decide_stream(studies, purpose, at, tree=tree,
                                             server_side=False)),
                     key=lambda a: a.study_uid)
    # One set, built once: membership per asked UID is then constant time.
    known = {a.study_uid for a in answers}
    unknown = [uid for uid in dict.fromkeys(study_uids or []) if uid not in known]
    allowed = [a.study_uid for a in answers if a.decision.allowed]
    denied = [a.study_uid for a in answers if not a.decision.allowed]
    single_patient = {a.patient_id for a in answers}
    ledger.record(
        action="consent.checked", event_code=codes.QUERY, actor=actor,
        purpose_code=purpose.code,
        patient_ref=next(iter(single_patient)) if len(single_patient) == 1 else "",
        study_uid=answers[0].study_uid if len(answers) == 1 else "",
        details={
            "at": at.isoformat(),
            "allowed_count": len(allowed),
            "denied_count": len(denied),
            "allowed": allowed,
            "denied": denied,
            "unknown": unknown,
        },
    )
    return CheckResult(purpose_code=purpose.code, at=at, answers=answers, unknown=unknown)
