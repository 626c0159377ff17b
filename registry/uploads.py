"""DICOM files uploaded through the API: stored under their sha256, then registered."""

import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from django.conf import settings

from audit.ledger import Actor
from registry.dicom import DicomHeader
from registry.models import Instance
from registry.registration import FileOutcome, Status, dicom_register, read_or_reject


def register_uploads(uploads, *, actor: Actor) -> list[FileOutcome]:
    """Store each readable upload under its sha256 in the data directory, then register.

    Files are written before the database transaction and removed again when they end up
    not registered, so a failed request leaves neither rows nor stray files behind."""
    incoming = settings.DATA_DIR / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    read: list[DicomHeader | FileOutcome] = []
    limit = settings.CONSENTRY_MAX_DICOM_UPLOAD_BYTES
    for upload in uploads:
        if upload.size > limit:
            read.append(FileOutcome(
                path=upload.name, status=Status.REJECTED,
                reason=f"larger than the upload limit of {limit / 2**20:.0f} MB; register "
                       "large studies from the PACS or with ingest_dicom"))
            continue
        with tempfile.NamedTemporaryFile(dir=incoming, delete=False, suffix=".dcm") as tmp:
            for chunk in upload.chunks():
                tmp.write(chunk)
        header = read_or_reject(tmp.name)
        if isinstance(header, FileOutcome):
            os.unlink(tmp.name)
            header = replace(header, path=upload.name)
        else:
            header = replace(header, path=str(_store(Path(tmp.name), header.sha256)))
        read.append(header)
    headers = [h for h in read if isinstance(h, DicomHeader)]
    stored = {h.path for h in headers}
    kept: set[str] = set()
    try:
        registered = iter(dicom_register(headers=headers, actor=actor, source="api")
                          if headers else [])
        outcomes = [h if isinstance(h, FileOutcome) else next(registered) for h in read]
        kept = set(Instance.objects.filter(path__in=stored).values_list("path", flat=True))
    finally:
        # Files no instance points at: rejected, conflicting, or the transaction failed.
        for path in stored - kept:
            Path(path).unlink(missing_ok=True)
    return outcomes


def _store(temporary: Path, sha256: str) -> Path:
    target = settings.DICOM_STORE_DIR / sha256[:2] / f"{sha256}.dcm"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(temporary, target)
    return target
