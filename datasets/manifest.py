"""Manifests of an exported version: every file with its size and sha256, the studies left
out counted by reason, the provenance; signed with the hospital's export key (Ed25519), so a
recipient checks them against the public key they pinned, never one the export carries."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.csv_safety import SafeCsvWriter
from datasets.signing import export_signing_key, key_id, public_pem

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
SIGNATURE = "manifest.sig"
# A copy of the signing key's public half, for convenience only: verification never trusts
# it (anyone could re-sign an export and swap it).
PUBLIC_KEY_COPY = "export-public-key.pem"
# Exact paths at the top of the export: a file of the same name deeper down is data, and
# must be listed like any other.
META_FILES = {MANIFEST_JSON, MANIFEST_CSV, SIGNATURE, PUBLIC_KEY_COPY}


def _data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()
                  and p.relative_to(directory).as_posix() not in META_FILES)


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_manifest(directory: Path, provenance: dict[str, Any]) -> str:
    """Hash every data file under ``directory``, write both manifests and the signature.
    Returns the sha256 of manifest.json."""
    files = _data_files(directory)
    listed = [{"path": p.relative_to(directory).as_posix(), "size": p.stat().st_size,
               "sha256": file_sha256(p)} for p in files]
    with open(directory / MANIFEST_CSV, "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["path", "size", "sha256"])
        for entry in listed:
            writer.writerow([entry["path"], entry["size"], entry["sha256"]])
    key = export_signing_key()
    body = {**provenance, "files": listed,
            "manifest_csv_sha256": file_sha256(directory / MANIFEST_CSV),
            "signature": {"algorithm": "Ed25519", "key_id": key_id(key.public_key())}}
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    (directory / MANIFEST_JSON).write_bytes(data)
    (directory / PUBLIC_KEY_COPY).write_text(public_pem(key.public_key()))
    (directory / SIGNATURE).write_text(base64.b64encode(key.sign(data)).decode() + "\n")
    return hashlib.sha256(data).hexdigest()


def verify_manifest(directory: Path, trusted: dict[str, Ed25519PublicKey]) -> list[str]:
    """Problems found in an exported directory, checked against the ``trusted`` public keys
    (by key id) the verifier pinned; an empty list means it is intact."""
    problems: list[str] = []
    try:
        data = (directory / MANIFEST_JSON).read_bytes()
        signature = base64.b64decode((directory / SIGNATURE).read_text().strip())
        body = json.loads(data)
        signed_by = body["signature"]["key_id"]
        public = trusted.get(signed_by)
        if public is None:
            return [f"the manifest is signed by key {signed_by}, which is not a key you "
                    f"trust ({', '.join(sorted(trusted)) or 'none given'}): pin the "
                    "hospital's published export key"]
        public.verify(signature, data)
    except FileNotFoundError as exc:
        return [f"missing {Path(exc.filename).name}"]
    except InvalidSignature:
        return ["the manifest's signature does not match: the manifest was changed"]
    except (ValueError, KeyError, TypeError) as exc:
        return [f"unreadable manifest: {exc}"]
    if file_sha256(directory / MANIFEST_CSV) != body.get("manifest_csv_sha256"):
        problems.append("manifest.csv was changed")
    listed = {entry["path"]: entry for entry in body["files"]}
    for path, entry in listed.items():
        target = directory / path
        if not target.is_file():
            problems.append(f"missing file {path}")
        elif target.stat().st_size != entry["size"] or file_sha256(target) != entry["sha256"]:
            problems.append(f"changed file {path}")
    present = {p.relative_to(directory).as_posix() for p in _data_files(directory)}
    problems += [f"unlisted file {path}" for path in sorted(present - set(listed))]
    return problems
