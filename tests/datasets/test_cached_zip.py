"""A zip made for an earlier download is not handed out again on trust: every download
re-checks the version's files, any withdrawn-free copy, and the zip itself against the
signed manifest."""

import shutil
import zipfile

import pytest

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.exports import version_dir
from datasets.manifest import file_sha256, verify_manifest
from datasets.models import VersionStudy
from datasets.packaging import NotDownloadable, version_download
from datasets.signing import published_keys
from tests.datasets.helpers import STEWARD, make_dataset, run_export


@pytest.fixture
def downloaded(steward, hospital, data_dir, django_capture_on_commit_callbacks):
    """A complete version, downloaded once so its zip now sits beside it."""
    version = run_export(make_dataset(steward, selection={"date_from": "2025-01-01"}),
                         django_capture_on_commit_callbacks)
    return version, version_download(version, STEWARD)


def _unpacked(path, tmp_path):
    with zipfile.ZipFile(path) as archive:
        archive.extractall(tmp_path / "out")
    (root,) = (tmp_path / "out").iterdir()
    return root


def _first_data_file(directory):
    return next(p for p in sorted(directory.rglob("*.dcm")))


def test_a_cached_zip_is_refused_when_the_version_files_changed_since(downloaded):
    version, _ = downloaded
    target = _first_data_file(version_dir(version))
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(NotDownloadable, match="changed file"):
        version_download(version, STEWARD)


def test_a_tampered_cached_zip_is_not_served_but_made_again(downloaded, tmp_path):
    version, path = downloaded
    original = {p.relative_to(version_dir(version)).as_posix(): file_sha256(p)
                for p in version_dir(version).rglob("*") if p.is_file()}
    # Someone with access to the disk swaps one image inside the prepared zip.
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    victim = next(name for name in sorted(members) if name.endswith(".dcm"))
    members[victim] = b"not the exported image"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)

    served = version_download(version, STEWARD)
    root = _unpacked(served, tmp_path)
    assert verify_manifest(root, published_keys()) == []
    assert {p.relative_to(root).as_posix(): file_sha256(p)
            for p in root.rglob("*") if p.is_file()} == original


def test_a_cached_zip_with_a_file_added_is_made_again(downloaded, tmp_path):
    version, path = downloaded
    with zipfile.ZipFile(path, "a") as archive:
        root_name = archive.namelist()[0].split("/")[0]
        archive.writestr(f"{root_name}/extra.dcm", b"riding along")
    served = version_download(version, STEWARD)
    with zipfile.ZipFile(served) as archive:
        assert f"{root_name}/extra.dcm" not in archive.namelist()


def test_a_cached_zip_that_is_not_a_zip_is_made_again(downloaded, tmp_path):
    version, path = downloaded
    path.write_bytes(b"PK but not really")
    root = _unpacked(version_download(version, STEWARD), tmp_path)
    assert verify_manifest(root, published_keys()) == []


def test_a_cached_copy_without_withdrawn_studies_is_rechecked(
        downloaded, hospital, django_capture_on_commit_callbacks, tmp_path):
    version, _ = downloaded
    knee = VersionStudy.objects.get(version=version, study__description="MR KNEE LEFT")
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(patient=hospital["ann"], purpose=Purpose.objects.get(code="ai-training"),
                       decision="deny", actor=STEWARD, source="portal", form=current_form(),
                       scope_kind="study", scope_value=knee.study.study_uid)
    first = version_download(version, STEWARD)
    assert "without-1-withdrawn" in first.name
    original = version_dir(version)
    copy = original.with_name(f"{original.name}-without-1-withdrawn")
    assert copy.is_dir() and not (copy / knee.pseudo_study_uid).exists()
    # The withdrawn study's folder comes back into the copy on disk: it must not go out.
    shutil.copytree(original / knee.pseudo_study_uid,
                    copy / knee.pseudo_study_uid)
    first.unlink()
    with pytest.raises(NotDownloadable, match="unlisted file"):
        version_download(version, STEWARD)


def test_an_intact_cached_zip_is_served_as_it_is_and_each_download_recorded(downloaded):
    version, path = downloaded
    made = path.stat()
    again = version_download(version, STEWARD)
    # The same file, not one made again (a new zip is written beside it and renamed in).
    assert again == path and again.stat().st_ino == made.st_ino
    assert again.stat().st_mtime_ns == made.st_mtime_ns
    assert AuditEvent.objects.filter(action="export.downloaded").count() == 2


def test_a_cached_zip_with_a_file_outside_its_folder_is_made_again(downloaded, tmp_path):
    version, path = downloaded
    # The manifest is checked over the version's folder only: a member beside that folder
    # would go out to the recipient unlisted and unnoticed.
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("stray.dcm", b"outside the folder")
    served = version_download(version, STEWARD)
    with zipfile.ZipFile(served) as archive:
        names = archive.namelist()
    assert "stray.dcm" not in names
    assert all(name.startswith(f"{served.stem}/") for name in names)
    assert not (served.parent / "stray.dcm").exists()
    root = _unpacked(served, tmp_path)
    assert verify_manifest(root, published_keys()) == []
