"""The hospital's export key: manifests are signed with it, and recipients verify them
against the public key they pinned from the hospital (page, API), never against a key
carried inside an export. Each key has an id, so keys can rotate: previous public keys stay
published (CONSENTRY_EXPORT_KEYS_DIR) and old exports still verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from django.conf import settings


def export_signing_key() -> Ed25519PrivateKey:
    """CONSENTRY_EXPORT_SIGNING_KEY (PEM), or a key the embedded install keeps in its data
    directory."""
    pem = settings.CONSENTRY_EXPORT_SIGNING_KEY
    if pem:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    else:
        path = Path(settings.DATA_DIR) / "export-signing-key.pem"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            path.chmod(0o600)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the export signing key must be an Ed25519 key")
    return key


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """A pinned key from its PEM; ValueError when it is not an Ed25519 public key."""
    try:
        public = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public


def published_keys() -> dict[str, Ed25519PublicKey]:
    """This hospital's export public keys by id: the current one first, then previous ones
    kept for exports signed before a rotation."""
    current = export_signing_key().public_key()
    keys = {key_id(current): current}
    directory = settings.CONSENTRY_EXPORT_KEYS_DIR
    if directory:
        for path in sorted(Path(directory).glob("*.pem")):
            public = load_public_key(path.read_bytes())
            keys.setdefault(key_id(public), public)
    return keys
