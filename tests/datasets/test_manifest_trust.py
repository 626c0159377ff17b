"""A recipient verifies an export against the hospital's published key, never one carried
inside the export; every file is checked by its exact path; keys rotate."""

import base64
import json
import shutil
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.test import Client

from datasets.exports import version_dir
from datasets.signing import key_id, published_keys
from tests.datasets.helpers import make_dataset, run_export


@pytest.fixture
def export(steward, hospital, data_dir, django_capture_on_commit_callbacks):
    return version_dir(run_export(make_dataset(steward), django_capture_on_commit_callbacks))


@pytest.fixture
def pinned(tmp_path):
    """The hospital's key as a recipient saves it from the published page."""
    page = Client().get("/exports/public-key/").content.decode()
    pem = page.split('<pre id="key-0">')[1].split("</pre>")[0]
    path = tmp_path / "hospital-export-key.pem"
    path.write_text(pem)
    return path


def verify(out, *keys):
    args = [a for key in keys for a in ("--public-key", str(key))]
    call_command("verify_export", str(out), *args, stdout=StringIO())


def test_an_export_verifies_against_the_pinned_key(export, pinned):
    verify(export, pinned)
    body = json.loads((export / "manifest.json").read_text())
    assert body["signature"]["key_id"] in published_keys()
    assert "public_key" not in body


def test_a_file_changed_and_re_signed_with_a_strangers_key_is_refused(export, pinned):
    stranger = Ed25519PrivateKey.generate()
    a_file = next(export.rglob("*.dcm"))
    a_file.write_bytes(a_file.read_bytes()[:-1] + b"\x01")
    body = json.loads((export / "manifest.json").read_text())
    for entry in body["files"]:
        if entry["path"] == a_file.relative_to(export).as_posix():
            import hashlib

            entry["sha256"] = hashlib.sha256(a_file.read_bytes()).hexdigest()
    body["signature"]["key_id"] = key_id(stranger.public_key())
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    (export / "manifest.json").write_bytes(data)
    (export / "manifest.sig").write_text(base64.b64encode(stranger.sign(data)).decode())
    (export / "export-public-key.pem").write_bytes(stranger.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(CommandError, match="not a key you trust"):
        verify(export, pinned)
    # Claiming the hospital's key id does not help: the signature does not match it.
    body["signature"]["key_id"] = next(iter(published_keys()))
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    (export / "manifest.json").write_bytes(data)
    (export / "manifest.sig").write_text(base64.b64encode(stranger.sign(data)).decode())
    with pytest.raises(CommandError, match="signature does not match"):
        verify(export, pinned)


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sig", "export-public-key.pem",
                                  "notes.txt"])
def test_an_extra_file_anywhere_is_refused_whatever_its_name(export, pinned, name):
    study_folder = next(p for p in export.iterdir() if p.is_dir())
    (study_folder / name).write_text("riding along")
    with pytest.raises(CommandError, match="unlisted file"):
        verify(export, pinned)


def test_a_zip_is_not_made_of_an_export_with_an_extra_file(export, steward):
    from datasets.models import DatasetVersion
    from datasets.packaging import NotDownloadable, version_download
    from tests.datasets.helpers import STEWARD

    study_folder = next(p for p in export.iterdir() if p.is_dir())
    (study_folder / "manifest.json").write_text("{}")
    with pytest.raises(NotDownloadable):
        version_download(DatasetVersion.objects.get(), STEWARD)


def test_old_exports_verify_after_a_key_rotation(export, pinned, settings, tmp_path):
    previous = tmp_path / "previous-keys"
    previous.mkdir()
    shutil.copy(pinned, previous / "2026.pem")
    settings.CONSENTRY_EXPORT_KEYS_DIR = str(previous)
    settings.CONSENTRY_EXPORT_SIGNING_KEY = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    keys = published_keys()
    assert len(keys) == 2
    page = Client().get("/exports/public-key/").content.decode()
    assert all(kid in page for kid in keys)
    api = Client().get("/api/v1/export-keys").json()
    assert {k["key_id"] for k in api["keys"]} == set(keys)
    verify(export)  # this installation's keys, the previous one included
    verify(export, pinned)


@pytest.mark.parametrize("content", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nxx\n"])
def test_a_broken_pinned_key_is_a_clear_error(export, tmp_path, content):
    bad = tmp_path / "bad.pem"
    bad.write_bytes(content)
    with pytest.raises(CommandError, match=r"bad\.pem"):
        verify(export, bad)
    with pytest.raises(CommandError, match="cannot read"):
        verify(export, tmp_path / "missing.pem")
