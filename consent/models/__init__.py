"""The consent app's models: what patients chose (purposes, forms, records, guardians,
reminders) and portal invitations. Patients and their imaging live in ``registry``."""

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
from consent.models.invites import PatientInvite

__all__ = [
    "ConsentForm",
    "ConsentRecord",
    "Decision",
    "ExpiryReminder",
    "Guardianship",
    "PatientInvite",
    "Policy",
    "Purpose",
    "ScopeKind",
    "Source",
]
