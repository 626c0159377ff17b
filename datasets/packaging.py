"""A complete version as one zip for download: built once, checked against its signed
manifest first, written beside the version and renamed into place whole.

A version that received withdrawal notices is never handed out as it was again: its
download is a copy without the withdrawn studies, re-signed, named for what it leaves out."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from django.db import transaction

from audit import codes, ledger
from audit.ledger import Actor
from datasets.exports import version_dir
from datasets.manifest import MANIFEST_JSON, META_FILES, verify_manifest, write_manifest
from datasets.models import DatasetVersion, VersionStatus, WithdrawnStudy
from datasets.signing import published_keys

logger = logging.getLogger(__name__)


def zip_name(version: DatasetVersion) -> str:
    """What the download is called; its files sit in a folder of the same name."""
    withdrawn = _withdrawn_uids(version)
    suffix = f"-without-{len(withdrawn)}-withdrawn" if withdrawn else ""
    return f"dataset-{version.dataset_id}-v{version.number}{suffix}"


def _withdrawn_uids(version: DatasetVersion) -> set[str]:
    return set(WithdrawnStudy.objects.filter(notice__version=version).values_list(
        "version_study__pseudo_study_uid", flat=True))


class NotDownloadable(Exception):
    """The version cannot be offered; the message says why."""


def version_zip(version: DatasetVersion) -> Path:
    if version.status != VersionStatus.COMPLETE:
        raise NotDownloadable(f"version {version.number} is not complete "
                              f"({version.get_status_display().lower()})")
    source = version_dir(version)
    _require_intact(source)
    withdrawn = _withdrawn_uids(version)
    if withdrawn:
        source = _without(version, source, withdrawn)
        # A copy made for an earlier download is trusted no more than the original.
        _require_intact(source)
    root = zip_name(version)
    target = source.with_name(f"{root}.zip")
    if target.exists():
        # A zip made earlier sits on disk as long as the version does: it goes out only if
        # what it holds still matches the signed manifest; otherwise it is made again from
        # the files just verified.
        problems = _zip_problems(target, root)
        if not problems:
            return target
        logger.warning("a prepared zip of dataset %s v%s no longer matches its signed "
                       "manifest (%s); making it again", version.dataset_id, version.number,
                       "; ".join(problems[:5]))
    partial = target.with_name(target.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=1) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            archive.write(path, f"{root}/{path.relative_to(source).as_posix()}")
    partial.replace(target)
    return target


def _require_intact(directory: Path) -> None:
    problems = verify_manifest(directory, published_keys())
    if problems:
        raise NotDownloadable("the exported files no longer match their signed manifest: "
                              + "; ".join(problems[:5]))


def _zip_problems(path: Path, root: str) -> list[str]:
    """verify_manifest over what the zip holds, unpacked beside it (its folder ``root``)."""
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".check-") as scratch:
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if any(not name.startswith(f"{root}/") for name in names):
                    return ["the zip holds files outside its folder"]
                archive.extractall(scratch)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            return [f"unreadable zip: {exc}"]
        return verify_manifest(Path(scratch) / root, published_keys())


def _without(version: DatasetVersion, source: Path, withdrawn: set[str]) -> Path:
    """A copy of the version without the withdrawn studies' folders, with its own signed
    manifests; made once per set of withdrawals, staged then renamed into place."""
    target = source.with_name(f"{source.name}-without-{len(withdrawn)}-withdrawn")
    if target.exists():
        return target
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=lambda folder, names: [
        n for n in names if Path(folder) == source and (n in withdrawn or n in META_FILES)])
    body = json.loads((source / MANIFEST_JSON).read_text())
    provenance = {key: value for key, value in body.items()
                  if key not in ("files", "manifest_csv_sha256", "signature")}
    provenance["studies"] = [uid for uid in provenance.get("studies", []) if uid not in withdrawn]
    provenance["withdrawn_since_delivery"] = sorted(withdrawn)
    provenance["repackaged_from"] = f"version {version.number}"
    write_manifest(staging, provenance)
    staging.rename(target)
    return target


def version_download(version: DatasetVersion, actor: Actor) -> Path:
    """The zip to send, and the ledger's note of who took it."""
    path = version_zip(version)
    with transaction.atomic():
        ledger.record(action="export.downloaded", event_code=codes.EXPORT, actor=actor,
                      dataset_ref=version.dataset_id, details={
                          "version": version.number, "bytes": path.stat().st_size,
                          "file": path.name})
    return path
