"""Datasets for AI training and research, their numbered versions, and what each held."""

from django.conf import settings
from django.db import models

from consent.models import ConsentRecord, Purpose
from registry.models import ImagingStudy, Patient


class Enforcement(models.TextChoices):
    EXCLUDE = "exclude", "Leave out studies without consent"
    REJECT = "reject", "Fail if any study lacks consent"
    LOG_ONLY = "log-only", "Export all, log each missing consent (needs a legal basis)"


class BurnedInText(models.TextChoices):
    EXCLUDE = "exclude", "Leave the study out"
    REDACT = "redact", "Black the text out and include the study"


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="datasets")
    recipient = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enforcement = models.CharField(max_length=16, choices=Enforcement.choices,
                                   default=Enforcement.EXCLUDE)
    irb_waiver = models.CharField("IRB waiver number", max_length=100, blank=True)
    approving_body = models.CharField(max_length=200, blank=True)
    approver = models.CharField(max_length=200, blank=True)
    # {"study_uids": [...]} or {"modality": "CT", "body_part": "CHEST", "date_from": ...}
    selection = models.JSONField(default=dict)
    deid_options = models.JSONField(default=list)
    defaced_upstream = models.BooleanField(default=False)
    # When OCR finds text burned into an image's pixels (datasets/burned_in.py).
    burned_in_text = models.CharField(max_length=8, choices=BurnedInText.choices,
                                      default=BurnedInText.EXCLUDE)
    # The key behind this dataset's pseudonyms and UIDs. It never leaves the registry.
    secret = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(enforcement="log-only") | (
                    ~models.Q(irb_waiver="") & ~models.Q(approving_body="")
                    & ~models.Q(approver="")),
                name="log_only_needs_legal_basis"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def legal_basis(self) -> str:
        if not self.irb_waiver:
            return ""
        return f"IRB waiver {self.irb_waiver} ({self.approving_body}, {self.approver})"


class ApprovalDecision(models.TextChoices):
    APPROVED = "approved", "Approved"
    REFUSED = "refused", "Refused"


class LegalBasisApproval(models.Model):
    """A privacy officer's decision on a log-only dataset's legal basis: a second person,
    never the one who asked. Final: a refused dataset is replaced by a new one."""

    dataset = models.OneToOneField(Dataset, on_delete=models.PROTECT, related_name="approval")
    decision = models.CharField(max_length=16, choices=ApprovalDecision.choices)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    decided_by_label = models.CharField(max_length=150)
    legal_basis = models.CharField(max_length=600)  # exactly what was approved
    note = models.TextField(blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(decision__in=["approved", "refused"]),
                                   name="approval_decision_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()}: {self.dataset}"


class VersionStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    COMPLETE = "complete", "Complete"
    FAILED = "failed", "Failed"


class DatasetVersion(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=VersionStatus.choices,
                              default=VersionStatus.QUEUED)
    requested_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    studies_total = models.PositiveIntegerField(default=0)
    studies_done = models.PositiveIntegerField(default=0)
    files_written = models.PositiveIntegerField(default=0)
    bytes_written = models.BigIntegerField(default=0)
    manifest_sha256 = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"],
                                               name="one_number_per_version")]

    def __str__(self) -> str:
        return f"{self.dataset} v{self.number} ({self.status})"


class VersionStudy(models.Model):
    """One study's fate in one version: included (with its pseudonymous UID) or not, why."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT,
                                related_name="studies")
    study = models.ForeignKey(ImagingStudy, on_delete=models.PROTECT, related_name="+")
    included = models.BooleanField()
    violation = models.BooleanField(default=False)
    reason = models.TextField()
    pseudo_study_uid = models.CharField(max_length=64, blank=True)
    files = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "study"],
                                               name="one_fate_per_study")]

    def __str__(self) -> str:
        return f"{self.study_id} in {self.version_id}: {'in' if self.included else 'out'}"


class ShardStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class ExportShard(models.Model):
    """A slice of a version's studies that one worker process writes at a time (claimed with
    SKIP LOCKED, held by a lease it renews), so any number of workers on any number of
    machines share one export; a dead worker's shard is claimed again once its lease ends.
    Number 0 is the manifest: claimable only once every other shard is done."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT,
                                related_name="shards")
    number = models.PositiveIntegerField()
    study_ids = models.JSONField(default=list)
    status = models.CharField(max_length=8, choices=ShardStatus.choices,
                              default=ShardStatus.PENDING)
    claimed_by = models.CharField(max_length=200, blank=True)  # host:pid of the holder
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "number"],
                                               name="one_shard_number_per_version")]
        # The claim: the next pending (or expired) shard of one version, by number.
        indexes = [models.Index(fields=["version", "status", "number"],
                                name="export_shard_claim")]

    def __str__(self) -> str:
        return f"shard {self.number} of {self.version_id} ({self.status})"
class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (retrying)"
    GAVE_UP = "gave-up", "Failed (no more retries)"
    WITHHELD = "withheld", "Withheld (consent withdrawn since the export)"


class DatasetDestination(models.Model):
    """Where a dataset's versions are sent besides (or instead of) the zip: a name from
    CONSENTRY_DESTINATIONS (a DICOM node or a STOW-RS endpoint). Set by a service with its
    ledger event; the address behind the name is configuration."""

    dataset = models.OneToOneField(Dataset, on_delete=models.PROTECT,
                                   related_name="destination")
    name = models.CharField(max_length=64)
    set_by = models.CharField(max_length=150)
    set_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.dataset_id} -> {self.name}"


class Delivery(models.Model):
    """One included study of a version sent to the dataset's destination."""

    version_study = models.ForeignKey(VersionStudy, on_delete=models.PROTECT,
                                      related_name="deliveries")
    destination = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices,
                              default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    instances_sent = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["version_study", "destination"],
                                    name="one_delivery_per_study_and_destination"),
            models.CheckConstraint(condition=models.Q(status__in=[
                "pending", "sent", "failed", "gave-up", "withheld"]),
                name="delivery_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.version_study_id} -> {self.destination} ({self.status})"


class Pseudonym(models.Model):
    """The re-identification key: which patient is behind a dataset's pseudonym."""

    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="+")
    pseudonym = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["dataset", "patient"],
                                               name="one_pseudonym_per_patient")]

    def __str__(self) -> str:
        return self.pseudonym


class NoticeCause(models.TextChoices):
    WITHDRAWN = "withdrawn", "Consent withdrawn"
    # A permit that expired (or a purpose whose default no longer allows it): no deny on
    # file, yet what went out on consent is no longer covered by it.
    LAPSED = "lapsed", "Consent expired"


class WithdrawalNotice(models.Model):
    """A delivered version holds studies whose patient has since said no (or whose consent
    lapsed): the owner must stop using them. Studies are listed by pseudonymous UID only."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT,
                                related_name="notices")
    cause = models.CharField(max_length=16, choices=NoticeCause.choices,
                             default=NoticeCause.WITHDRAWN)
    # The deny that caused it; none when consent lapsed.
    consent_record = models.ForeignKey(ConsentRecord, null=True, blank=True,
                                       on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # The recipient's word that they deleted the studies: who said so, how, when recorded.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_by = models.CharField(max_length=200, blank=True)
    confirmation = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(confirmed_at__isnull=True)
                | (~models.Q(confirmed_by="") & ~models.Q(confirmation="")),
                name="notice_confirmation_complete"),
            models.CheckConstraint(
                condition=models.Q(cause="lapsed")
                | models.Q(cause="withdrawn", consent_record__isnull=False),
                name="notice_cause_valid"),
        ]

    def __str__(self) -> str:
        return f"notice on {self.version} ({self.created_at:%Y-%m-%d})"


class WithdrawnStudy(models.Model):
    notice = models.ForeignKey(WithdrawalNotice, on_delete=models.PROTECT,
                               related_name="studies")
    # One notice per study per version, however often consent is withdrawn again.
    version_study = models.OneToOneField(VersionStudy, on_delete=models.PROTECT,
                                         related_name="withdrawal")

    def __str__(self) -> str:
        return self.version_study.pseudo_study_uid
