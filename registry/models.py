"""The registry: patients and the imaging studies, series and instances behind them."""

from datetime import date

from django.conf import settings
from django.db import models, transaction

from registry.identifiers import (
    BlindIndexField,
    IdentifierCharField,
    IdentifierDateField,
    patient_search_digests,
)
from registry.vocabulary import AnatomySource


class Sex(models.TextChoices):
    FEMALE = "F", "Female"
    MALE = "M", "Male"
    OTHER = "O", "Other"
    UNKNOWN = "", "Unknown"


class Patient(models.Model):
    # The MRN is unique only within the authority that issued it (DICOM IssuerOfPatientID).
    issuer = models.CharField(max_length=64)
    # Direct identifiers are encrypted at rest (registry/identifiers.py); they are found
    # through blind indexes: mrn_index here, the desk's words and prefixes in PatientSearchKey.
    mrn = IdentifierCharField("MRN", max_length=64)
    mrn_index = BlindIndexField(source="mrn", kind="mrn")
    name = IdentifierCharField(max_length=200, blank=True)
    birth_date = IdentifierDateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, blank=True)
    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="patient")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # Newest registered first: ciphertext has no useful order, and a desk looking for a
        # patient usually looks for one who has just been scanned.
        ordering = ["-created_at", "-id"]
        constraints = [
            # Also serves registration's "patient by MRN" (find or create).
            models.UniqueConstraint(fields=["issuer", "mrn_index"],
                                    name="patient_mrn_per_issuer"),
        ]
        indexes = [
            # The auditor's and disclosures' "patient by MRN" whatever the issuer.
            models.Index(fields=["mrn_index"], name="patient_mrn_index"),
        ]

    def __str__(self) -> str:
        return f"{self.mrn} ({self.issuer})"

    def save(self, *args, **kwargs) -> None:
        # The search keys are part of the row's invariant (they index its encrypted
        # identifiers), so they are written with it, in the same transaction.
        fields = kwargs.get("update_fields")
        with transaction.atomic():
            super().save(*args, **kwargs)
            if fields is None or {"mrn", "name"} & set(fields):
                search_keys_write([self])


class PatientSearchKey(models.Model):
    """One blind-index digest that finds a patient at the desk or through the API: the
    folded MRN, each MRN prefix of 4 or more characters, each word of the name
    (registry/identifiers.py). Derived data, rewritten whenever the patient is saved or the
    keys rotate."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)

    class Meta:
        constraints = [
            # Also serves the search "patients having these digests" (digest first).
            models.UniqueConstraint(fields=["digest", "patient"], name="search_key_unique"),
        ]

    def __str__(self) -> str:
        return f"search key of patient {self.patient_id}"


def search_keys_write(patients: list[Patient]) -> None:
    """(Re)write the search keys of these saved patients from their identifiers."""
    ids = [p.pk for p in patients]
    PatientSearchKey.objects.filter(patient_id__in=ids).delete()
    PatientSearchKey.objects.bulk_create([
        PatientSearchKey(patient_id=p.pk, digest=digest) for p in patients
        for digest in sorted(patient_search_digests(mrn=p.mrn or "", name=p.name or ""))])


class ImagingStudy(models.Model):
    study_uid = models.CharField("StudyInstanceUID", max_length=64, unique=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="studies")
    accession_number = IdentifierCharField(max_length=64, blank=True)
    accession_index = BlindIndexField(source="accession_number", kind="accession")
    study_date = models.DateField(null=True, blank=True)
    # The patient's age in whole years on the study date, kept with the study because the
    # birth date is encrypted: dataset selection by age stays one SQL filter over millions of
    # studies. Set whenever a study is saved or registered (``age_on``).
    patient_age = models.SmallIntegerField(null=True, blank=True)
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
            # Staff look-up by accession number (its blind index; the number is encrypted).
            models.Index(fields=["accession_index"], name="study_accession"),
            # A patient's studies, newest first (portal, staff desk).
            models.Index(fields=["patient", "-study_date"], name="study_patient_date"),
            # Dataset selection by study date range.
            models.Index(fields=["study_date"], name="study_date"),
        ]

    def __str__(self) -> str:
        return self.study_uid

    def save(self, *args, **kwargs) -> None:
        self.patient_age = age_on(self.patient.birth_date, self.study_date)
        fields = kwargs.get("update_fields")
        if fields is not None and "study_date" in fields:
            kwargs["update_fields"] = {*fields, "patient_age"}
        super().save(*args, **kwargs)


def age_on(born: date | None, on: date | None) -> int | None:
    """Whole years from birth to ``on``; None without both dates. (Negative for a study
    dated before the birth date: a data error that selection by age then leaves out of a
    minimum age, as it always did.)"""
    if born is None or on is None:
        return None
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


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


class IngestShard(models.Model):
    """One slice of an ingest job's files: its own outbox message, so any number of worker
    processes (on any machine that mounts the files) register one job at once."""

    job = models.ForeignKey(IngestJob, on_delete=models.CASCADE, related_name="shards")
    number = models.PositiveIntegerField()
    files = models.JSONField()  # absolute paths, listed when the job was queued
    status = models.CharField(max_length=16, choices=IngestStatus.choices,
                              default=IngestStatus.QUEUED)
    summary = models.JSONField(default=dict, blank=True)
    processed_by = models.CharField(max_length=200, blank=True)  # host and process id
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"],
                                               name="one_ingest_shard_per_number")]

    def __str__(self) -> str:
        return f"ingest job {self.job_id} shard {self.number} ({self.status})"
