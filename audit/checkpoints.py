"""Signed checkpoints of the ledger's head, kept outside the database.

A table owner can disable the append-only triggers and rewrite the chain consistently, or
cut its newest events; nothing inside the database can show that. So, on a schedule, the
head of the chain (position and hash) is signed with an Ed25519 key and written as a small
JSON file to a directory the hospital can keep on write-once storage. ``verify`` checks
the chain against every checkpoint: a checkpoint whose position is missing, or whose hash
differs from the chain's at that position, proves the ledger was changed after it was
signed.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings
from django.utils import timezone

from audit.models import ChainLink

FORMAT = "consentry-ledger-checkpoint/1"


def signing_key() -> Ed25519PrivateKey:
    """The key from CONSENTRY_LEDGER_SIGNING_KEY (PEM), or one the embedded install keeps in
    its data directory."""
    pem = settings.CONSENTRY_LEDGER_SIGNING_KEY
    if pem:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    else:
        path = Path(settings.DATA_DIR) / "ledger-signing-key.pem"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fresh = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            path.write_bytes(fresh)
            path.chmod(0o600)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the ledger signing key must be an Ed25519 key")
    return key


def public_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def checkpoint_dir() -> Path:
    return Path(settings.CONSENTRY_CHECKPOINT_DIR or Path(settings.DATA_DIR) / "checkpoints")


def _signed_bytes(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def checkpoint_write() -> Path | None:
    """Sign the current head into a new file; None when the chain is empty."""
    head = ChainLink.objects.order_by("-position").values_list(
        "position", "event_id", "chain_hash").first()
    if head is None:
        return None
    key = signing_key()
    body = {"format": FORMAT, "position": head[0], "event_id": head[1],
            "chain_hash": head[2], "signed_at": timezone.now().isoformat(),
            "public_key": public_key_text(key)}
    signature = base64.b64encode(key.sign(_signed_bytes(body))).decode()
    directory = checkpoint_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"checkpoint-{head[0]:012d}.json"
    if target.exists():
        return target  # this head is already signed
    partial = target.with_suffix(".partial")
    partial.write_text(json.dumps({**body, "signature": signature}, indent=2))
    os.replace(partial, target)  # whole files only, never half-written ones
    return target


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    position: int
    event_id: int
    chain_hash: str


class CheckpointInvalid(Exception):
    pass


def checkpoints_load() -> list[Checkpoint]:
    """Every checkpoint file, signature checked against our key, oldest first."""
    expected_key = public_key_text(signing_key())
    found = []
    for path in sorted(checkpoint_dir().glob("checkpoint-*.json")):
        try:
            data = json.loads(path.read_text())
            signature = base64.b64decode(data.pop("signature"))
            if data.get("format") != FORMAT or data.get("public_key") != expected_key:
                raise CheckpointInvalid(f"{path.name} was not signed with this ledger's key")
            public = Ed25519PublicKey.from_public_bytes(base64.b64decode(expected_key))
            public.verify(signature, _signed_bytes(data))
        except InvalidSignature:
            raise CheckpointInvalid(f"{path.name} has a bad signature") from None
        except (KeyError, ValueError, TypeError) as exc:
            raise CheckpointInvalid(f"{path.name} is unreadable: {exc}") from None
        found.append(Checkpoint(path, int(data["position"]), int(data["event_id"]),
                                data["chain_hash"]))
    return sorted(found, key=lambda c: c.position)
