"""Manifests of an exported version: every file with its size and sha256, the studies left
out counted by reason, the provenance; signed with Ed25519 so a consumer can check them."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.checkpoints import public_key_text, signing_key
from audit.csv_safety import SafeCsvWriter

MANIFEST_JSON = "manifest.json"
MANIFEST_CSV = "manifest.csv"
SIGNATURE = "manifest.sig"
META_FILES = {MANIFEST_JSON, MANIFEST_CSV, SIGNATURE}


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_manifest(directory: Path, provenance: dict[str, Any]) -> str:
    """Hash every data file under ``directory``, write both manifests and the signature.
    Returns the sha256 of manifest.json."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in META_FILES)
    listed = [{"path": p.relative_to(directory).as_posix(), "size": p.stat().st_size,
               "sha256": file_sha256(p)} for p in files]
    with open(directory / MANIFEST_CSV, "w", newline="") as handle:
        writer = SafeCsvWriter(handle)
        writer.writerow(["path", "size", "sha256"])
        for entry in listed:
            writer.writerow([entry["path"], entry["size"], entry["sha256"]])
    key = signing_key()
    body = {**provenance, "files": listed,
            "manifest_csv_sha256": file_sha256(directory / MANIFEST_CSV),
            "public_key": public_key_text(key)}
    data = json.dumps(body, indent=2, sort_keys=True).encode()
    (directory / MANIFEST_JSON).write_bytes(data)
    (directory / SIGNATURE).write_text(base64.b64encode(key.sign(data)).decode() + "\n")
    return hashlib.sha256(data).hexdigest()


def verify_manifest(directory: Path) -> list[str]:
    """Problems found in an exported directory; an empty list means it is intact."""
    problems: list[str] = []
    try:
        data = (directory / MANIFEST_JSON).read_bytes()
        signature = base64.b64decode((directory / SIGNATURE).read_text().strip())
        body = json.loads(data)
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(body["public_key"]))
        public.verify(signature, data)
    except FileNotFoundError as exc:
        return [f"missing {Path(exc.filename).name}"]
    except InvalidSignature:
        return ["the manifest's signature does not match: the manifest was changed"]
    except (ValueError, KeyError) as exc:
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
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*")
               if p.is_file() and p.name not in META_FILES}
    problems += [f"unlisted file {path}" for path in sorted(present - set(listed))]
    return problems
