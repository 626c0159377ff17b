"""The consent app's models, by subject: the registry (patients and imaging), what patients
chose (purposes, forms, records), and ways in (invitations, tokens)."""

from consent.models.access import ApiToken, PatientInvite, TokenScope
from consent.models.choices import (
    ConsentForm,
    ConsentRecord,
    Decision,
    ExpiryReminder,
    Guardianship,
    Policy,
    Purpose,
    ScopeKind,
    Source,
)
from consent.models.registry import (
    ImagingStudy,
    IngestJob,
    IngestStatus,
    Instance,
    Patient,
    Series,
    Sex,
)

__all__ = [
    "ApiToken",
    "ConsentForm",
    "ConsentRecord",
    "Decision",
    "ExpiryReminder",
    "Guardianship",
    "ImagingStudy",
    "IngestJob",
    "IngestStatus",
    "Instance",
    "Patient",
    "PatientInvite",
    "Policy",
    "Purpose",
    "ScopeKind",
    "Series",
    "Sex",
    "Source",
    "TokenScope",
]
