"""One factory per kind of ledger event the registry writes (the saleor pattern).

Each returns a draft; callers write it with ``ledger.record_drafts`` (many at once) in the
transaction of the change it records."""

from typing import Any

from audit import codes, ledger
from audit.ledger import Actor


def study_registered(*, actor: Actor, patient_id: int, study_uid: str, source: str,
                     new_patient: bool, new_study: bool, series_added: int,
                     instances_added: int, correlation_id: str = "") -> dict[str, Any]:
    return ledger.event_draft(
        action="dicom.registered",
        event_code=codes.IMPORT,
        actor=actor,
        patient_ref=patient_id,
        study_uid=study_uid,
        details={
            "source": source,
            "new_patient": new_patient,
            "new_study": new_study,
            "series_added": series_added,
            "instances_added": instances_added,
        },
        correlation_id=correlation_id,
    )


def phi_searched(*, actor: Actor, what: str, criteria: dict[str, Any], via: str,
                 page: str = "1") -> dict[str, Any]:
    """A search of the registry is a use of patients' data: who searched for what."""
    return ledger.event_draft(
        action="phi.searched", event_code=codes.QUERY, actor=actor,
        details={"what": what, "via": via, "page": str(page)[:10],
                 "criteria": {k: str(v) for k, v in criteria.items() if v not in ("", None)}})
