"""The registry: patients and the imaging studies, series and instances behind them."""

from django.conf import settings
from django.db import models


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other"
    UNKNOWN = "", "Unknown"


class Patient(models.Model):
    # The MRN is unique only within the authority that issued it (DICOM IssuerOfPatientID).
    issuer = models.CharField(max_length=64)
    mrn = models.CharField("MRN", max_length=64)
    name = models.CharField(max_length=200, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="patient")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["issuer", "mrn"]
        constraints = [
            # Also serves the staff lookup "patient by MRN".
            models.UniqueConstraint(fields=["issuer", "mrn"], name="patient_mrn_per_issuer"),
        ]

    def __str__(self) -> str:
        return f"{self.mrn} ({self.issuer})"


class ImagingStudy(models.Model):
    study_uid = models.CharField("StudyInstanceUID", max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    accession_number = models.CharField(max_length=64, blank=True)
    study_date = models.DateField(null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    # Denormalised from the series, DICOM style ("CT\\MR"), for display and listing.
    modalities = models.CharField(max_length=128, blank=True)
    body_parts = models.CharField(max_length=255, blank=True)
    series_count = models.PositiveIntegerField(default=0)
    instance_count = models.PositiveIntegerField(default=0)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-study_date", "study_uid"]
        verbose_name_plural = "imaging studies"
        indexes = [
            # Staff look-up by accession number.
            models.Index(fields=["accession_number"], name="study_accession"),
            # A patient's studies, newest first (portal, staff desk).
            models.Index(fields=["patient", "-study_date"], name="study_patient_date"),
            # Dataset selection by study date range.
            models.Index(fields=["study_date"], name="study_date"),
        ]

    def __str__(self) -> str:
        return self.study_uid


class Series(models.Model):
    series_uid = models.CharField("SeriesInstanceUID", max_length=64, unique=True)
    study = models.ForeignKey(ImagingStudy, on_delete=models.PROTECT, related_name="series")
    modality = models.CharField(max_length=16, blank=True)
    # Upper-cased on the way in: consent scopes compare body parts case-insensitively.
    body_part = models.CharField(max_length=64, blank=True)
    series_number = models.IntegerField(null=True, blank=True)
    description = models.CharField(max_length=255, blank=True)
    instance_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["study", "series_number", "series_uid"]
        verbose_name_plural = "series"
        indexes = [
            # Consent scopes and dataset selections by modality or body part.
            models.Index(fields=["modality", "study"], name="series_modality"),
            models.Index(fields=["body_part", "study"], name="series_body_part"),
        ]

    def __str__(self) -> str:
        return self.series_uid


class Instance(models.Model):
    sop_uid = models.CharField("SOPInstanceUID", max_length=64, unique=True)
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="instances")
    sop_class_uid = models.CharField(max_length=64, blank=True)
    instance_number = models.IntegerField(null=True, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    path = models.TextField()
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    registered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["series", "instance_number", "sop_uid"]

    def __str__(self) -> str:
        return self.sop_uid


class IngestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class IngestJob(models.Model):
    """A folder registration handed to a worker; its summary is kept for whoever asked."""

    paths = models.JSONField()
    requested_by = models.CharField(max_length=150)
    status = models.CharField(max_length=16, choices=IngestStatus.choices,
                              default=IngestStatus.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"ingest job {self.pk} ({self.status})"


class Policy(models.TextChoices):
    OPT_IN = "opt-in", "Opt-in (no permit on file means no)"
    OPT_OUT = "opt-out", "Opt-out (no refusal on file means yes)"


class Purpose(models.Model):
    """What data may be used for. A tree: a choice about ``research`` covers its children
    unless a choice about the child itself says otherwise."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(help_text="Plain language, as a patient reads it.")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                               related_name="children")
    default_policy = models.CharField(max_length=8, choices=Policy.choices)
    # GA4GH Data Use Ontology term, where one matches (e.g. DUO:0000042).
    duo_id = models.CharField("DUO term", max_length=16, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(default_policy__in=["opt-in", "opt-out"]),
                                   name="purpose_policy_valid"),
            models.CheckConstraint(condition=~models.Q(parent=models.F("id")),
                                   name="purpose_not_own_parent"),
        ]

    def __str__(self) -> str:
        return self.name


class ConsentForm(models.Model):
    """A version of the text a person sees before choosing. Never edited: a new text is a
    new version, and records keep the sha256 of the exact text shown."""

    code = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64)
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version"], name="consent_form_version"),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version}"


class Decision(models.TextChoices):
    PERMIT = "permit", "Permit"
    DENY = "deny", "Deny"


class ScopeKind(models.TextChoices):
    ALL = "all", "All studies"
    STUDY = "study", "One study"
    MODALITY = "modality", "Kind of scan (modality)"
    BODY_PART = "body_part", "Body part"


class Source(models.TextChoices):
    PORTAL = "portal", "Patient portal"
    STAFF = "staff", "Staff desk"
    PAPER = "paper", "Paper form"
    VERBAL = "verbal", "Verbal, witnessed"
    API = "api", "API"
    FHIR = "fhir", "FHIR import"


class ConsentRecord(models.Model):
    """One choice, as made. Immutable: changing one's mind adds a record, and the database
    refuses UPDATE and DELETE on this table (consent/migrations, audit/guards.py)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="consents")
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    # '' for all studies; a StudyInstanceUID; an upper-cased modality or body part.
    scope_value = models.CharField(max_length=64, blank=True)
    effective_from = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # When it was recorded: decisions "as of" a past moment see only records made by then.
    recorded_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    recorded_by_label = models.CharField(max_length=150)
    # Who made the choice: the patient, or a guardian or proxy named here.
    proxy_name = models.CharField(max_length=200, blank=True)
    proxy_relationship = models.CharField(max_length=64, blank=True)
    witness = models.CharField(max_length=200, blank=True)
    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="+")
    text_sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [
            # The engine's "newest record per (patient, purpose, scope)" and the portal's
            # history both read a patient's records by purpose, newest first.
            models.Index(fields=["patient", "purpose", "scope_kind", "scope_value",
                                 "-recorded_at"], name="consent_newest_per_scope"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(decision__in=["permit", "deny"]),
                                   name="consent_decision_valid"),
            models.CheckConstraint(
                condition=(models.Q(scope_kind="all", scope_value="")
                           | (models.Q(scope_kind__in=["study", "modality", "body_part"])
                              & ~models.Q(scope_value=""))),
                name="consent_scope_value_matches_kind"),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True)
                | models.Q(expires_at__gt=models.F("effective_from")),
                name="consent_expires_after_start"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.decision} {self.purpose_id} {self.scope_kind}"

    @property
    def by_proxy(self) -> bool:
        return bool(self.proxy_name)


class Guardianship(models.Model):
    """A user who may make choices for a patient (a parent, a legal guardian, a proxy)."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="guardians")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="dependants")
    relationship = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "user"], name="one_guardianship"),
        ]

    def __str__(self) -> str:
        return f"{self.user} for {self.patient} ({self.relationship})"


class PatientInvite(models.Model):
    """A one-time link that lets a patient set a password. Only the token's hash is kept."""

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="invites")
    email = models.EmailField()
    token_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_by_label = models.CharField(max_length=150)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"invite for {self.patient} until {self.expires_at:%Y-%m-%d %H:%M}"


class ExpiryReminder(models.Model):
    """A reminder sent for a choice that is about to expire; one per record, ever."""

    record = models.OneToOneField(ConsentRecord, on_delete=models.PROTECT, related_name="+")
    queued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"reminder for record {self.record_id}"
