"""The consent tables the ledger vouches for (audit/vouching.py), and their canonical
content: the values that decide anything. Changing a canonical function changes every
digest of its table: treat it as a file format (a change needs a re-vouching migration).

``recorded_by_id`` and ``user``-less labels are left out where the foreign key is
SET_NULL: deleting a user must not look like tampering."""

from __future__ import annotations

import hashlib
import importlib
from functools import cache
from typing import Any

from audit.vouching import VouchedTable, canonical_digest, register_vouched
from consent.models import ConsentForm, ConsentRecord, Guardianship, Purpose

RECORD = "consent.record"
FORM = "consent.form"
PURPOSE = "consent.purpose"
GUARDIANSHIP = "consent.guardianship"

_SEED = "consent.migrations.0002_seed_purposes_and_guard_records"


def record_canonical(row: ConsentRecord) -> dict[str, Any]:
    return {
        "patient": row.patient_id, "purpose": row.purpose_id, "decision": row.decision,
        "scope_kind": row.scope_kind, "scope_value": row.scope_value,
        "effective_from": row.effective_from, "expires_at": row.expires_at,
        "recorded_at": row.recorded_at, "source": row.source,
        "recorded_by_label": row.recorded_by_label, "proxy_name": row.proxy_name,
        "proxy_relationship": row.proxy_relationship, "witness": row.witness,
        "form": row.form_id, "text_sha256": row.text_sha256,
        "attachment_sha256": row.attachment_sha256, "attachment_name": row.attachment_name,
    }


def form_canonical(row: ConsentForm) -> dict[str, Any]:
    # Not published_at: the seeded form's is the moment the migration ran, which the code
    # cannot vouch for; what a patient was shown is the text and its hash.
    return {"code": row.code, "version": row.version, "title": row.title, "text": row.text,
            "text_sha256": row.text_sha256}


def purpose_canonical(row: Purpose) -> dict[str, Any]:
    # The parent by code, not id, so a seeded tree digests the same in every database.
    parent = Purpose.objects.filter(pk=row.parent_id).values_list("code", flat=True).first() \
        if row.parent_id else None
    return {"code": row.code, "name": row.name, "description": row.description,
            "parent": parent, "default_policy": row.default_policy, "duo_id": row.duo_id,
            "position": row.position}


def guardianship_canonical(row: Guardianship) -> dict[str, Any]:
    return {"patient": row.patient_id, "user": row.user_id,
            "relationship": row.relationship, "created_at": row.created_at}


@cache
def _seeded() -> tuple[dict[str, str], dict[str, str]]:
    """Digests of what consent's seeding migration writes, computed from the migration's
    own data: those rows existed before any event could vouch for them."""
    seed = importlib.import_module(_SEED)
    purposes = {}
    for position, (code, parent, policy, duo, name, description) in enumerate(seed.PURPOSES):
        purposes[code] = canonical_digest({
            "code": code, "name": name, "description": description, "parent": parent,
            "default_policy": policy, "duo_id": duo, "position": position})
    form = canonical_digest({
        "code": "imaging-use", "version": 1, "title": "How your scans may be used",
        "text": seed.FORM_TEXT,
        "text_sha256": hashlib.sha256(seed.FORM_TEXT.encode()).hexdigest()})
    return purposes, {"imaging-use/1": form}


def register() -> None:
    register_vouched(VouchedTable(name=RECORD, label="consent record", model=ConsentRecord,
                                  canonical=record_canonical))
    register_vouched(VouchedTable(
        name=FORM, label="consent form", model=ConsentForm, canonical=form_canonical,
        natural_key=lambda row: f"{row.code}/{row.version}", baseline=lambda: _seeded()[1]))
    register_vouched(VouchedTable(
        name=PURPOSE, label="purpose", model=Purpose, canonical=purpose_canonical,
        natural_key=lambda row: row.code, baseline=lambda: _seeded()[0]))
    register_vouched(VouchedTable(name=GUARDIANSHIP, label="guardianship",
                                  model=Guardianship, canonical=guardianship_canonical))
