"""DICOMweb sources: a PACS whose studies are registered from their metadata (QIDO-RS to
find them, WADO-RS metadata to read them), without copying a pixel.

An instance known only by its PACS location has ``path`` =
``dicomweb://<source>/studies/<study>/series/<series>/instances/<sop>``. ``instance_files``
gives every instance of a study as a local file for as long as an export needs it: local
instances as they are, PACS ones fetched with WADO-RS into a temporary folder that is
removed as soon as the export has written the study.

Sources are settings (``CONSENTRY_DICOMWEB_SOURCES``, credentials in
``CONSENTRY_DICOMWEB_CREDENTIALS``), never rows: a base URL and a password are
configuration, and a PACS address changed in one place changes it for every instance.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from dicomweb_client.session_utils import create_session_from_user_pass
from django.conf import settings

from audit.ledger import Actor
from registry.dicom import DicomRejected, header_from_dataset
from registry.models import ImagingStudy, Instance
from registry.registration import FileOutcome, IngestSummary, Status, dicom_register

SCHEME = "dicomweb://"
PAGE = 100
TIMEOUT = 60


class SourceUnavailable(Exception):
    """A DICOMweb source cannot be used now (unknown, down, or answering errors)."""


def source_client(name: str) -> DICOMwebClient:
    url = settings.CONSENTRY_DICOMWEB_SOURCES.get(name)
    if not url:
        raise SourceUnavailable(f"no DICOMweb source {name!r} (CONSENTRY_DICOMWEB_SOURCES)")
    credentials = settings.CONSENTRY_DICOMWEB_CREDENTIALS.get(name, "")
    if credentials:
        user, _, password = credentials.partition(":")
        session = create_session_from_user_pass(user, password)
    else:
        session = requests.Session()
    client = DICOMwebClient(url=url.rstrip("/"), session=session)
    # The client's own retries (five attempts over about 30 s, on any error) would hold a
    # worker per request while a PACS is down; the poll and the export retry later instead.
    client.set_http_retry_params(retry=False)
    return client


def location(source: str, study: str, series: str, sop: str) -> str:
    return f"{SCHEME}{source}/studies/{study}/series/{series}/instances/{sop}"


def parse_location(path: str) -> tuple[str, str, str, str]:
    """(source, study, series, SOP instance) of a PACS location."""
    source, _, rest = path.removeprefix(SCHEME).partition("/")
    parts = rest.split("/")
    if len(parts) != 6 or parts[0::2] != ["studies", "series", "instances"]:
        raise ValueError(f"not a DICOMweb location: {path!r}")
    return source, parts[1], parts[3], parts[5]


def _call(source: str, what: str, function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"DICOMweb source {source!r} did not answer {what}: "
                                f"{type(exc).__name__}: {exc}"[:500]) from None


def _text(item: dict, tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or [""]
    return str(values[0])


def dicomweb_poll(*, source: str, actor: Actor) -> IngestSummary:
    """Register the metadata of the source's studies we do not hold whole yet.

    Reads everything before writing: a source that fails half-way registers nothing."""
    client = source_client(source)
    studies, offset = [], 0
    while True:
        page = _call(source, "QIDO-RS", client.search_for_studies, offset=offset, limit=PAGE,
                     fields=["StudyInstanceUID", "NumberOfStudyRelatedInstances"])
        studies += page
        if len(page) < PAGE:
            break
        offset += PAGE
    known = dict(ImagingStudy.objects.filter(
        study_uid__in=[_text(s, "0020000D") for s in studies]).values_list(
            "study_uid", "instance_count"))
    headers, summary = [], IngestSummary()
    for study in studies:
        uid = _text(study, "0020000D")
        count = _text(study, "00201208")
        if uid in known and count.isdigit() and known[uid] >= int(count):
            continue  # nothing new in this study
        metadata = _call(source, "WADO-RS metadata", client.retrieve_study_metadata, uid)
        for item in metadata:
            outcome = _header_of(source, item)
            if isinstance(outcome, FileOutcome):
                summary.add(outcome)
            else:
                headers.append(outcome)
    for start in range(0, len(headers), 200):
        for outcome in dicom_register(headers=headers[start:start + 200], actor=actor,
                                      source=f"dicomweb:{source}",
                                      correlation_id=f"dicomweb-{uuid.uuid4().hex}"):
            summary.add(outcome)
    return summary


def _header_of(source: str, item: dict):
    sop = _text(item, "00080018")
    where = location(source, _text(item, "0020000D"), _text(item, "0020000E"), sop)
    try:
        ds = pydicom.Dataset.from_json(
            {tag: value for tag, value in item.items() if "BulkDataURI" not in value})
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        if _text(item, "00020010"):
            ds.file_meta.TransferSyntaxUID = _text(item, "00020010")
        return header_from_dataset(ds, path=where, size=0, sha256="",
                                   default_issuer=settings.CONSENTRY_DEFAULT_MRN_ISSUER)
    except DicomRejected as exc:
        return FileOutcome(path=where, status=Status.REJECTED, reason=exc.reason)
    except Exception as exc:  # malformed metadata from the PACS: that instance is refused
        return FileOutcome(path=where, status=Status.REJECTED,
                           reason=f"malformed metadata: {type(exc).__name__}: {exc}"[:300])


@contextmanager
def instance_files(instances: Iterable[Instance]) -> Iterator[dict[int, str]]:
    """{instance id: local file} for these instances, for the duration of the block.

    PACS instances are fetched with WADO-RS, in their stored transfer syntax, into a
    private temporary folder removed on leaving the block, whatever happens. Raises
    SourceUnavailable when a source cannot deliver (an export then retries later rather
    than leave the study out)."""
    folder = None
    files: dict[int, str] = {}
    try:
        for instance in instances:
            if not instance.path.startswith(SCHEME):
                files[instance.pk] = instance.path
                continue
            if folder is None:
                base = Path(settings.DATA_DIR) / "tmp"
                base.mkdir(parents=True, exist_ok=True)
                folder = Path(tempfile.mkdtemp(prefix="wado-", dir=base))
            source, study, series, sop = parse_location(instance.path)
            client = source_client(source)
            ds = _call(source, "WADO-RS", client.retrieve_instance, study, series, sop,
                       media_types=(("application/dicom", "*"),))
            target = folder / f"{instance.pk}.dcm"
            ds.save_as(target, enforce_file_format=True)
            files[instance.pk] = str(target)
        yield files
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
