"""Registering DICOM files: patients, studies, series and instances, with their events.

Files are read outside any transaction (I/O never holds a database transaction open); each
batch is then written in one transaction together with its ledger events.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import current_process, get_context
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Subquery

from audit import ledger
from audit.ledger import Actor
from registry import events
from registry.dicom import DicomHeader, DicomRejected, iter_files, read_header
from registry.identifiers import mrn_digest
from registry.models import (
    ImagingStudy,
    Instance,
    Patient,
    Series,
    age_on,
    search_keys_write,
)
from registry.vocabulary import anatomy_of

BATCH_SIZE = 200


class Status:
    REGISTERED = "registered"
    KNOWN = "known"          # the same file (same SOPInstanceUID and content) is registered
    CONFLICT = "conflict"    # the SOPInstanceUID is registered with different content
    REJECTED = "rejected"


@dataclass(frozen=True)
class FileOutcome:
    path: str
    status: str
    reason: str = ""
    study_uid: str = ""
    sop_uid: str = ""


@dataclass
class IngestSummary:
    counts: Counter = field(default_factory=Counter)
    problems: list[FileOutcome] = field(default_factory=list)  # rejected and conflicting

    def add(self, outcome: FileOutcome) -> None:
        self.counts[outcome.status] += 1
        if outcome.status in (Status.REJECTED, Status.CONFLICT):
            self.problems.append(outcome)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {
            "registered": self.counts[Status.REGISTERED],
            "known": self.counts[Status.KNOWN],
            "conflict": self.counts[Status.CONFLICT],
            "rejected": self.counts[Status.REJECTED],
            "problems": [
                {"path": o.path, "status": o.status, "reason": o.reason} for o in self.problems
            ],
        }


def dicom_register(*, headers: Sequence[DicomHeader], actor: Actor, source: str,
                   correlation_id: str = "") -> list[FileOutcome]:
    """Register already-read headers in one transaction; one outcome per header, in order.

    Idempotent: a file already registered is ``known``; a known SOPInstanceUID with other
    content is a ``conflict`` and the registered file is left as it is."""
    attempt = 1
    while True:
        try:
            return _register_batch(headers, actor, source, correlation_id)
        except IntegrityError:
            # Another process registered some of the same rows between our read and write;
            # on the next attempt they are visible and count as known.
            if attempt == 3:
                raise
            attempt += 1


@transaction.atomic
def _register_batch(headers: Sequence[DicomHeader], actor: Actor, source: str,
                    correlation_id: str) -> list[FileOutcome]:
    outcomes: dict[int, FileOutcome] = {}
    registered = dict(Instance.objects.filter(
        sop_uid__in={h.sop_uid for h in headers}).values_list("sop_uid", "sha256"))
    new: list[tuple[int, DicomHeader]] = []
    for index, header in enumerate(headers):
        if header.sop_uid in registered:
            outcomes[index] = _known_or_conflict(header, registered[header.sop_uid])
        else:
            new.append((index, header))

    patients = _patients_for(h for _, h in new)
    # The study's patient is compared by blind index: nothing is decrypted per file.
    studies = {s.study_uid: s for s in ImagingStudy.objects.filter(
        study_uid__in={h.study_uid for _, h in new}).select_related("patient").defer(
            "accession_number", "patient__mrn", "patient__name", "patient__birth_date")}
    series = {s.series_uid: s for s in Series.objects.filter(
        series_uid__in={h.series_uid for _, h in new}).select_related("study")}

    new_studies: dict[str, ImagingStudy] = {}
    new_series: dict[str, Series] = {}
    instances: list[Instance] = []
    touched: Counter = Counter()
    in_this_batch: dict[str, str] = {}  # SOPInstanceUID -> sha256, for repeats in one batch
    for index, header in new:
        if header.sop_uid in in_this_batch:
            outcomes[index] = _known_or_conflict(header, in_this_batch[header.sop_uid])
            continue
        patient = patients[(header.issuer, header.patient_id)]
        study = studies.get(header.study_uid) or new_studies.get(header.study_uid)
        if study is None:
            study = ImagingStudy(
                study_uid=header.study_uid, patient=patient,
                accession_number=header.accession_number, study_date=header.study_date,
                description=header.study_description,
                patient_age=age_on(patient.birth_date, header.study_date),
            )
        elif (study.patient.issuer, study.patient.mrn_index) != (
                header.issuer, mrn_digest(header.patient_id)):
            outcomes[index] = _reject(header, "the study is registered for another patient")
            continue
        one_series = series.get(header.series_uid) or new_series.get(header.series_uid)
        if one_series is None:
            # A series' anatomy is read from its first instance registered.
            anatomy = anatomy_of(
                body_part=header.body_part, region_codes=header.anatomic_region_codes,
                texts=(header.series_description, header.study_description,
                       header.protocol_name))
            one_series = new_series[header.series_uid] = Series(
                series_uid=header.series_uid, study=study, modality=header.modality,
                body_part=header.body_part, series_number=header.series_number,
                description=header.series_description, anatomy=anatomy.label,
                anatomy_source=anatomy.source, anatomy_regions=anatomy.stored_regions,
            )
        elif one_series.study.study_uid != header.study_uid:
            outcomes[index] = _reject(header, "the series is registered in another study")
            continue
        # A new study is kept only once a file of it is registered: a rejected file leaves
        # no row, not even an empty study (nor a new patient with one).
        if header.study_uid not in studies:
            new_studies.setdefault(header.study_uid, study)
        instances.append(Instance(
            sop_uid=header.sop_uid, series=one_series, sop_class_uid=header.sop_class_uid,
            instance_number=header.instance_number,
            transfer_syntax_uid=header.transfer_syntax_uid, path=header.path,
            size=header.size, sha256=header.sha256,
            burned_in_annotation=header.burned_in_annotation,
        ))
        in_this_batch[header.sop_uid] = header.sha256
        touched[header.study_uid] += 1
        outcomes[index] = FileOutcome(path=header.path, status=Status.REGISTERED,
                                      study_uid=header.study_uid, sop_uid=header.sop_uid)

    # New studies and series hold only what this batch adds: count them here, so only
    # studies and series registered before (a study spread over batches) need counting
    # in the database.
    _count_new(new_studies, new_series, instances)

    # Parents first: bulk_create fills in their keys, which the children then pick up.
    # Only patients with a registered study are created: a rejected file leaves no row.
    new_patients = list({id(s.patient): s.patient for s in new_studies.values()
                         if s.patient.pk is None}.values())
    # Each new patient's identifiers are encrypted here, once per patient (not per file).
    Patient.objects.bulk_create(new_patients)
    search_keys_write(new_patients)
    ImagingStudy.objects.bulk_create(new_studies.values())
    Series.objects.bulk_create(new_series.values())
    Instance.objects.bulk_create(instances)

    touched_studies = {**studies, **new_studies}
    touched_series = {instance.series.series_uid for instance in instances}
    _refresh_counts([studies[uid].pk for uid in touched if uid in studies],
                    [s.pk for uid, s in series.items() if uid in touched_series])
    series_added = Counter(s.study.study_uid for s in new_series.values())
    ledger.record_drafts([
        events.study_registered(
            actor=actor, patient_id=study.patient.pk, study_uid=study_uid, source=source,
            new_patient=study.patient in new_patients, new_study=study_uid in new_studies,
            series_added=series_added[study_uid], instances_added=instances_added,
            correlation_id=correlation_id,
        )
        for study_uid, instances_added in touched.items()
        for study in [touched_studies[study_uid]]
    ])
    return [outcomes[i] for i in range(len(headers))]


def _known_or_conflict(header: DicomHeader, known_sha: str) -> FileOutcome:
    # A PACS's metadata has no file to hash (sha256 ''): the SOPInstanceUID names it.
    if header.sha256 == known_sha or not header.sha256:
        return FileOutcome(path=header.path, status=Status.KNOWN,
                           study_uid=header.study_uid, sop_uid=header.sop_uid)
    return FileOutcome(
        path=header.path, status=Status.CONFLICT, study_uid=header.study_uid,
        sop_uid=header.sop_uid,
        reason="this SOPInstanceUID is already registered with different content; "
               "the registered file was kept",
    )


def _reject(header: DicomHeader, reason: str) -> FileOutcome:
    return FileOutcome(path=header.path, status=Status.REJECTED, reason=reason,
                       study_uid=header.study_uid, sop_uid=header.sop_uid)


def _patients_for(headers: Iterable[DicomHeader]) -> dict[tuple[str, str], Patient]:
    """Registered patients by (issuer, MRN); an unsaved one for each not registered yet."""
    wanted: dict[tuple[str, str], DicomHeader] = {}
    for header in headers:
        wanted.setdefault((header.issuer, header.patient_id), header)
    patients: dict[tuple[str, str], Patient] = {}
    # Found by blind index (one index probe per issuer); the MRN is known from the digest,
    # so only the birth date is decrypted (once a patient, for the new studies' ages).
    for issuer in {issuer for issuer, _ in wanted}:
        by_digest = {mrn_digest(mrn): mrn for i, mrn in wanted if i == issuer}
        for patient in Patient.objects.filter(issuer=issuer, mrn_index__in=by_digest).defer(
                "mrn", "name"):
            patients[(patient.issuer, by_digest[patient.mrn_index])] = patient
    for (issuer, mrn), h in wanted.items():
        if (issuer, mrn) not in patients:
            patients[(issuer, mrn)] = Patient(issuer=issuer, mrn=mrn, name=h.patient_name,
                                              birth_date=h.birth_date, sex=h.sex,
                                              mrn_index=mrn_digest(mrn))
    return patients


def _count_new(new_studies: dict[str, ImagingStudy], new_series: dict[str, Series],
               instances: list[Instance]) -> None:
    """The counts ``_refresh_counts`` would store, for studies and series not saved yet."""
    per_series = Counter(instance.series.series_uid for instance in instances)
    for uid, one_series in new_series.items():
        one_series.instance_count = per_series[uid]
    by_study: dict[str, list[Series]] = {}
    for one_series in new_series.values():
        by_study.setdefault(one_series.study.study_uid, []).append(one_series)
    for uid, study in new_studies.items():
        rows = by_study.get(uid, [])
        study.series_count = len(rows)
        study.instance_count = sum(s.instance_count for s in rows)
        study.modalities = "\\".join(sorted({s.modality for s in rows if s.modality}))[:128]
        study.body_parts = "\\".join(sorted({s.body_part for s in rows if s.body_part}))[:255]


def _refresh_counts(study_ids: list[int], series_ids: list[int]) -> None:
    if series_ids:
        Series.objects.filter(pk__in=series_ids).update(instance_count=Subquery(
            Instance.objects.filter(series=OuterRef("pk")).order_by()
            .values("series").annotate(n=Count("pk")).values("n")))
    if not study_ids:
        return
    by_study: dict[int, list[tuple[str, str, int]]] = {}
    for study_id, modality, body_part, count in Series.objects.filter(
            study_id__in=study_ids).values_list("study_id", "modality", "body_part",
                                                "instance_count"):
        by_study.setdefault(study_id, []).append((modality, body_part, count))
    ImagingStudy.objects.bulk_update([
        ImagingStudy(
            pk=study_id,
            series_count=len(rows),
            instance_count=sum(count for _, _, count in rows),
            modalities="\\".join(sorted({m for m, _, _ in rows if m}))[:128],
            body_parts="\\".join(sorted({b for _, b, _ in rows if b}))[:255],
        )
        for study_id, rows in by_study.items()
    ], ["series_count", "instance_count", "modalities", "body_parts"])


ProgressCallback = Callable[[int], None]


# Files handed to the reading processes at a time: enough to keep them busy, few enough
# that a folder of millions of files never becomes millions of pending futures.
READ_WINDOW = 2000


def dicom_ingest_paths(*, paths: Iterable[str | os.PathLike], actor: Actor, source: str,
                       progress: ProgressCallback | None = None,
                       correlation_id: str = "", readers: int = 1) -> IngestSummary:
    """Walk files and folders, register every DICOM file, and say what happened to each.

    A file that cannot be registered is rejected with its reason; the batch goes on.
    With ``readers`` > 1, files are read and hashed (the CPU-bound part) by that many
    processes while this one writes the batches, in the same order as with one reader."""
    correlation_id = correlation_id or uuid.uuid4().hex
    summary = IngestSummary()
    batch: list[DicomHeader] = []

    def flush() -> None:
        for outcome in dicom_register(headers=batch, actor=actor, source=source,
                                      correlation_id=correlation_id):
            summary.add(outcome)
        if progress:
            progress(len(batch))
        batch.clear()

    for header in _read_all(paths_to_files(paths), readers):
        if isinstance(header, FileOutcome):
            summary.add(header)
            if progress:
                progress(1)
            continue
        batch.append(header)
        if len(batch) >= BATCH_SIZE:
            flush()
    if batch:
        flush()
    return summary


def _read_all(files: list[Path], readers: int) -> Iterator[DicomHeader | FileOutcome]:
    issuer = settings.CONSENTRY_DEFAULT_MRN_ISSUER
    # A daemonic process (a Celery prefork worker's) may not start children.
    if readers <= 1 or len(files) < 2 or current_process().daemon:
        for path in files:
            yield _read_or_reject_as(path, issuer)
        return
    from concurrent.futures import ProcessPoolExecutor

    # Forked readers run plain pydicom and never touch the database or Django's
    # connection they inherit; they leave with os._exit, so that socket stays this
    # process's alone.
    with ProcessPoolExecutor(max_workers=readers, mp_context=get_context("fork")) as pool:
        for start in range(0, len(files), READ_WINDOW):
            window = files[start:start + READ_WINDOW]
            yield from pool.map(partial(_read_or_reject_as, issuer=issuer), window,
                                chunksize=max(1, min(32, len(window) // (4 * readers))))


def read_or_reject(path: str | os.PathLike) -> DicomHeader | FileOutcome:
    return _read_or_reject_as(path, settings.CONSENTRY_DEFAULT_MRN_ISSUER)


def _read_or_reject_as(path: str | os.PathLike, issuer: str) -> DicomHeader | FileOutcome:
    # Module level and without settings, so a reading process can run it.
    try:
        return read_header(path, default_issuer=issuer)
    except DicomRejected as exc:
        return FileOutcome(path=os.fspath(path), status=Status.REJECTED, reason=exc.reason)


def paths_to_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    return [path.resolve() for path in iter_files(paths)]
