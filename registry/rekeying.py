"""Re-encrypting the registry's identifiers under the newest key, and recomputing their
blind indexes under the current blind-index key (``manage.py rotate_identifier_keys``).

A batch is one transaction: a run that is stopped leaves every row readable (each is under
the old or the new key, both still configured) and can simply be run again."""

from __future__ import annotations

from django.db import transaction

from registry.identifiers import accession_digest, mrn_digest
from registry.models import ImagingStudy, Patient, search_keys_write

BATCH = 1000


def _batches(queryset, size: int):
    last = 0
    while True:
        rows = list(queryset.filter(pk__gt=last).order_by("pk")[:size])
        if not rows:
            return
        yield rows
        last = rows[-1].pk


def patients_rekey(*, batch: int = BATCH) -> int:
    """Patients: name, MRN and birth date re-encrypted (the field encrypts under the first
    key on write), the MRN's blind index and the search keys recomputed."""
    count = 0
    for rows in _batches(Patient.objects.all(), batch):
        for patient in rows:
            patient.mrn_index = mrn_digest(patient.mrn)
        with transaction.atomic():
            Patient.objects.bulk_update(rows, ["mrn", "name", "birth_date", "mrn_index"])
            search_keys_write(rows)
        count += len(rows)
    return count


def studies_rekey(*, batch: int = BATCH) -> int:
    count = 0
    for rows in _batches(ImagingStudy.objects.only("pk", "accession_number"), batch):
        for study in rows:
            study.accession_index = accession_digest(study.accession_number)
        with transaction.atomic():
            ImagingStudy.objects.bulk_update(rows, ["accession_number", "accession_index"])
        count += len(rows)
    return count
