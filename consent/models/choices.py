"""What patients chose: purposes, consent forms and immutable consent records."""

from django.conf import settings
from django.db import models

from registry import vocabulary
from registry.identifiers import IdentifierCharField
from registry.models import Patient


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
    # '' for all studies; a StudyInstanceUID; a modality code (or group, XRAY) or a body
    # region code from registry/vocabulary.py.
    scope_value = models.CharField(max_length=64, blank=True)
    effective_from = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # When it was recorded: decisions "as of" a past moment see only records made by then.
    recorded_at = models.DateTimeField()
    source = models.CharField(max_length=16, choices=Source.choices)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    recorded_by_label = models.CharField(max_length=150)
    # Who made the choice: the patient, or a guardian or proxy named here. The names of the
    # proxy and the witness are direct identifiers of people: encrypted at rest (README,
    # "Identifiers at rest"); the relationship ("parent") is not.
    proxy_name = IdentifierCharField(max_length=200, blank=True)
    proxy_relationship = models.CharField(max_length=64, blank=True)
    witness = IdentifierCharField(max_length=200, blank=True)
    form = models.ForeignKey(ConsentForm, on_delete=models.PROTECT, related_name="+")
    text_sha256 = models.CharField(max_length=64)
    # A scanned paper form, stored under the data directory by its sha256.
    attachment_sha256 = models.CharField(max_length=64, blank=True)
    attachment_name = models.CharField(max_length=200, blank=True)

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
            # Scope values are canonical: the newest record per scope and the engine's
            # matching compare them as stored. A new vocabulary code needs a migration.
            models.CheckConstraint(
                condition=(models.Q(scope_kind="all", scope_value="")
                           | (models.Q(scope_kind="study") & ~models.Q(scope_value=""))
                           | models.Q(scope_kind="modality",
                                      scope_value__in=sorted(vocabulary.modalities()))
                           | models.Q(scope_kind="body_part",
                                      scope_value__in=list(vocabulary.regions()))),
                name="consent_scope_value_canonical"),
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


class ExpiryReminder(models.Model):
    """A reminder sent for a choice that is about to expire; one per record, ever."""

    record = models.OneToOneField(ConsentRecord, on_delete=models.PROTECT, related_name="+")
    queued_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"reminder for record {self.record_id}"
