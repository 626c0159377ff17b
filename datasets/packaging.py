"""A complete version as one zip for download: built once, checked against its signed
manifest first, written beside the version and renamed into place whole."""

from __future__ import annotations

import zipfile
from pathlib import Path

from django.db import transaction

from audit import codes, ledger
from audit.ledger import Actor
from datasets.exports import version_dir
from datasets.manifest import verify_manifest
from datasets.models import DatasetVersion, VersionStatus
from datasets.signing import published_keys


def zip_name(version: DatasetVersion) -> str:
    """What the download is called; its files sit in a folder of the same name."""
    return f"dataset-{version.dataset_id}-v{version.number}"


class NotDownloadable(Exception):
    """The version cannot be offered; the message says why."""


def version_zip(version: DatasetVersion) -> Path:
    if version.status != VersionStatus.COMPLETE:
        raise NotDownloadable(f"version {version.number} is not complete "
                              f"({version.get_status_display().lower()})")
    source = version_dir(version)
    target = source.with_name(f"{source.name}.zip")
    if target.exists():
        return target
    problems = verify_manifest(source, published_keys())
    if problems:
        raise NotDownloadable("the exported files no longer match their signed manifest: "
                              + "; ".join(problems[:5]))
    root = zip_name(version)
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.write(path, f"{root}/{path.relative_to(source).as_posix()}")
    partial.replace(target)
    return target


def version_download(version: DatasetVersion, actor: Actor) -> Path:
    """The zip to send, and the ledger's note of who took it."""
    path = version_zip(version)
    with transaction.atomic():
        ledger.record(action="export.downloaded", event_code=codes.EXPORT, actor=actor,
                      dataset_ref=version.dataset_id, details={
                          "version": version.number, "bytes": path.stat().st_size})
    return path
