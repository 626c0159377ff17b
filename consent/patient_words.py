"""What the portal tells a patient, in their words: reasons without record numbers, uses
without UIDs or codes. Reads only; the engine's own reasons stay as they are for staff and
the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _

from audit.models import AuditEvent
from consent.engine import ConsentDecision, PurposeTree
from consent.models import ConsentRecord, Purpose
from consent.wording import mid_sentence, patient_reason, scan_name
from registry.models import ImagingStudy, Patient


def _records(decisions: list[ConsentDecision]) -> dict[int, ConsentRecord]:
    ids = {pk for d in decisions for pk in d.record_ids}
    return ConsentRecord.objects.select_related("purpose").in_bulk(ids)


def reasons_for(study: ImagingStudy, decisions: list[tuple[Purpose, ConsentDecision]]
                ) -> list[tuple[Purpose, ConsentDecision, str]]:
    """Each purpose's decision for one scan with its reason in the patient's words."""
    records = _records([d for _, d in decisions])
    name = scan_name(study.description, study.modalities)
    return [(purpose, decision, reason_words(purpose, decision, records, name))
            for purpose, decision in decisions]


def reasons_grid(grid: dict) -> dict:
    """The portal's scan grid {(study id, purpose id): decision} with each decision's
    reason in the patient's words, in one query for the deciding records."""
    records = _records(list(grid.values()))
    purposes = Purpose.objects.in_bulk({purpose_id for _, purpose_id in grid})
    return {key: reason_words(purposes[key[1]], decision, records, "")
            for key, decision in grid.items()}


def reason_words(purpose: Purpose, decision: ConsentDecision,
                 records: dict[int, ConsentRecord], study_name: str) -> str:
    deciding = [records[pk] for pk in decision.record_ids if pk in records]
    # The engine marks a body-part no that matched only because the scan's anatomy is not
    # recorded; its reason is the one place that says so.
    unsure = "may apply" in decision.reason
    return patient_reason(allowed=decision.allowed, purpose=purpose, records=deciding,
                          unsure=unsure, study_name=study_name)


@dataclass(frozen=True)
class Use:
    """One line of "Who used my data"."""

    when: datetime
    kind: str  # "shared", "sent", "withdrawn", "deleted"
    scan: str  # the scan's name, or "" for a whole dataset
    recipient: str
    purpose: str  # the purpose's name, mid-sentence
    without_consent: str  # the legal basis when it went out without the patient's yes
    how: str = ""


def uses_in_words(patient: Patient, events: list[AuditEvent]) -> list[Use]:
    """The ledger's use events for a patient, as lines they can read: scan names instead of
    StudyInstanceUIDs, purpose names instead of codes."""
    tree = PurposeTree.load()
    studies = {s.study_uid: s for s in patient.studies.filter(
        study_uid__in={e.study_uid for e in events if e.study_uid})}
    lines = []
    for event in events:
        details = event.details or {}
        study = studies.get(event.study_uid)
        scan = scan_name(study.description, study.modalities) if study else ""
        try:
            purpose = mid_sentence(tree.get(event.purpose_code).name) if event.purpose_code else ""
        except LookupError:
            purpose = ""
        kind = {"dataset.withdrawal_notice": "withdrawn",
                "dataset.withdrawal_confirmed": "deleted",
                "export.delivered": "sent"}.get(event.action, "shared")
        lines.append(Use(
            when=event.occurred_at, kind=kind, scan=scan,
            recipient=details.get("recipient") or _("a research team at the hospital"),
            purpose=purpose,
            without_consent=event.legal_basis if event.action == "export.violation" else "",
            how=details.get("how", "") if kind == "deleted" else
            ("lapsed" if details.get("cause") == "lapsed" else "")))
    return lines
