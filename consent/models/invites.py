"""Portal invitations: a one-time way in for a patient."""

from django.db import models

from registry.identifiers import IdentifierEmailField
from registry.models import Patient


class PatientInvite(models.Model):
    """A one-time link, mailed to the patient, to open a portal account. Only the token's
    hash is kept."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="invites")
    email = IdentifierEmailField()  # encrypted at rest: a direct identifier
    # Set when the link is mailed (by the outbox handler); the link itself is never stored.
    token_sha256 = models.CharField(max_length=64, unique=True, null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)
    created_by_label = models.CharField(max_length=150)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite for {self.patient} until {self.expires_at:%Y-%m-%d %H:%M}"
