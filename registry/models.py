"""The registry: patients and the imaging studies, series and instances behind them."""

from django.conf import settings
from django.db import models

from registry.vocabulary import AnatomySource


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
    # What the series shows, as registry/vocabulary.py read it at registration: the parts
    # ("BRAIN", or "CHEST\\ABDOMEN" from a description), where they were read, and the
    # regions they lie in as "|HEAD|NECK|" ('' when unknown), which consent scopes match.
    anatomy = models.CharField(max_length=64, blank=True)
    anatomy_source = models.CharField(max_length=16, choices=AnatomySource.choices,
                                      default=AnatomySource.UNKNOWN)
    anatomy_regions = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["study", "series_number", "series_uid"]
        verbose_name_plural = "series"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(anatomy_source__in=[c for c, _ in AnatomySource.choices]),
                name="series_anatomy_source_valid"),
            # Unknown anatomy and no regions go together: the engine's fail-closed rule
            # reads one, the desk shows the other.
            models.CheckConstraint(
                condition=(models.Q(anatomy_source=AnatomySource.UNKNOWN, anatomy_regions="")
                           | (~models.Q(anatomy_source=AnatomySource.UNKNOWN)
                              & models.Q(anatomy_regions__startswith="|"))),
                name="series_anatomy_regions_known"),
        ]
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
    # As the header says (YES, NO, or '' when absent): an export's safety check, and its
    # preview, read it here instead of opening every file.
    burned_in_annotation = models.CharField(max_length=3, blank=True)
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
