"""The ledger's tables. Rows here are never updated or deleted: the database refuses it
(see ``audit/guards.py``), and no code path in the application tries."""

from django.conf import settings
from django.db import models


class Outcome(models.TextChoices):
    SUCCESS = "success", "Success"
    DENIED = "denied", "Denied"
    FAILURE = "failure", "Failure"


class AuditEvent(models.Model):
    """One thing that happened, with plain references: the ledger knows no consent model."""

    occurred_at = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=64)
    # DICOM PS3.15 / IHE ATNA EventID (DCM code), blank where none applies.
    event_code = models.CharField(max_length=16, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)

    # SET_NULL, never CASCADE: removing a user must not remove what they did.
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_constraint=False,
    )
    actor_label = models.CharField(max_length=150)
    actor_role = models.CharField(max_length=32, blank=True)
    actor_ip = models.GenericIPAddressField(null=True, blank=True)
    api_token = models.CharField(max_length=64, blank=True)

    patient_ref = models.CharField(max_length=64, blank=True)
    study_uid = models.CharField(max_length=64, blank=True)
    dataset_ref = models.CharField(max_length=64, blank=True)
    purpose_code = models.CharField(max_length=64, blank=True)
    legal_basis = models.CharField(max_length=255, blank=True)
    consent_record_ids = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=64, blank=True)

    # sha256 of the canonical content (audit/ledger.py), fixed at insert.
    digest = models.CharField(max_length=64)
    # The exact text that was hashed (audit/ledger.py, canonical_text), kept so that
    # verification hashes stored bytes instead of re-encoding every event. The columns above
    # stay what the ledger says; verification checks them against this text. Empty (NULL) on
    # events written before it existed, which are verified from their columns alone.
    # NULL, not "", for "written before this column": a nullable column is added without
    # re-creating or rewriting the append-only table.
    canonical = models.TextField(null=True, blank=True, editable=False)  # noqa: DJ001

    class Meta:
        ordering = ["-id"]
        indexes = [
            # "Every use of this patient's data": the patient page and accounting of disclosures.
            models.Index(fields=["patient_ref", "-id"], name="audit_event_patient"),
            # "What happened to this study": study page, export investigations.
            models.Index(fields=["study_uid", "-id"], name="audit_event_study"),
            models.Index(fields=["action", "-id"], name="audit_event_action"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.outcome} by {self.actor_label}"


class ChainLink(models.Model):
    """The event's place in the hash chain: hash = sha256(previous hash, event id, digest).

    Links are written by the sealer after the event's own transaction commits, so writers
    never wait on each other for the chain (see README, "The ledger")."""

    position = models.BigIntegerField(primary_key=True)
    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, related_name="link")
    chain_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return f"{self.position}: {self.chain_hash[:12]}"


class PendingSeal(models.Model):
    """Events committed but not chained yet: a work queue the sealer empties.

    Deleting a row here without sealing only leaves its event outside the chain, which
    ``verify_ledger`` reports."""

    event = models.OneToOneField(AuditEvent, on_delete=models.PROTECT, primary_key=True,
                                 related_name="+")
    # A copy of the event's digest, so the sealer reads the queue alone (no join with the
    # whole event table). A wrong copy is sealed as it is and then fails verification,
    # which recomputes every digest from the event's content.
    digest = models.CharField(max_length=64, default="")

    def __str__(self) -> str:
        return f"pending {self.event_id}"


class VerificationRun(models.Model):
    """One run of the ledger verification, for the auditors' dashboard. (Not part of the
    chain: it reports on the chain.)"""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    trigger = models.CharField(max_length=32)
    ok = models.BooleanField()
    checked = models.BigIntegerField()
    pending = models.BigIntegerField()
    checkpoints = models.IntegerField()
    first_bad_event_id = models.BigIntegerField(null=True, blank=True)
    first_bad_position = models.BigIntegerField(null=True, blank=True)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"verification {self.started_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'BROKEN'}"
