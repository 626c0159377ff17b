"""One factory per kind of ledger event the consent app writes (the saleor pattern)."""

from audit import ledger
from audit.ledger import Actor
from audit.models import AuditEvent

# DICOM PS3.15 / IHE ATNA event IDs (DCM codes).
DCM_IMPORT = "110107"


def study_registered(*, actor: Actor, patient_id: int, study_uid: str, source: str,
                     new_patient: bool, new_study: bool, series_added: int,
                     instances_added: int, correlation_id: str = "") -> AuditEvent:
    return ledger.record(
        action="dicom.registered",
        event_code=DCM_IMPORT,
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
