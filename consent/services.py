"""Writes to consent. Each is one transaction with its ledger event; ``grep consent_`` lists
everything that can change what a patient chose."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import codes, ledger
from audit.ledger import Actor
from consent import events
from consent.models import (
    ConsentForm,
    ConsentRecord,
    Decision,
    Purpose,
    ScopeKind,
    Source,
)
from outbox.services import outbox_publish
from registry import vocabulary
from registry.models import ImagingStudy, Patient

CONSENT_CHANGED = "consent.changed"


def normalise_scope(*, patient: Patient, scope_kind: str, scope_value: str) -> str:
    """The stored form of a scope value, or ValidationError naming the field."""
    if scope_kind not in ScopeKind.values:
        raise ValidationError({"scope_kind": f"unknown scope {scope_kind!r}"})
    value = (scope_value or "").strip()
    if scope_kind == ScopeKind.ALL:
        if value:
            raise ValidationError({"scope_value": "a scope of all studies takes no value"})
        return ""
    if not value:
        raise ValidationError({"scope_value": f"a {scope_kind} scope needs a value"})
    if scope_kind == ScopeKind.STUDY:
        if not ImagingStudy.objects.filter(patient=patient, study_uid=value).exists():
            raise ValidationError({"scope_value": "no such study for this patient"})
        return value
    # Only the vocabulary's codes are stored, turned from what people type (MRI -> MR,
    # "head and brain" -> HEAD); anything else is refused with the nearest known terms.
    try:
        if scope_kind == ScopeKind.MODALITY:
            return vocabulary.canonical_modality(value)
        return vocabulary.canonical_region(value)
    except vocabulary.UnknownTerm as exc:
        raise ValidationError({"scope_value": str(exc)}) from None


@transaction.atomic
def consent_record(
    *,
    patient: Patient,
    purpose: Purpose,
    decision: str,
    actor: Actor,
    source: str,
    form: ConsentForm,
    scope_kind: str = ScopeKind.ALL,
    scope_value: str = "",
    effective_from: datetime | None = None,
    expires_at: datetime | None = None,
    proxy_name: str = "",
    proxy_relationship: str = "",
    witness: str = "",
    attachment: tuple[str, str] | None = None,
) -> ConsentRecord:
    """Record one choice. Nothing is edited: a change of mind is a newer record.

    A deny that replaces a permit for the same purpose and scope is a withdrawal, and the
    ledger says so."""
    if decision not in Decision.values:
        raise ValidationError({"decision": f"must be permit or deny, not {decision!r}"})
    if source not in Source.values:
        raise ValidationError({"source": f"unknown source {source!r}"})
    now = timezone.now()
    effective_from = effective_from or now
    if expires_at is not None and expires_at <= effective_from:
        raise ValidationError({"expires_at": "must be after the choice takes effect"})
    if bool(proxy_name) != bool(proxy_relationship):
        raise ValidationError({"proxy_relationship": "a proxy needs both a name and a "
                                                     "relationship to the patient"})
    scope_value = normalise_scope(patient=patient, scope_kind=scope_kind,
                                  scope_value=scope_value)
    previous = (ConsentRecord.objects
                .filter(patient=patient, purpose=purpose, scope_kind=scope_kind,
                        scope_value=scope_value)
                .order_by("-recorded_at", "-id").values_list("decision", flat=True).first())
    record = ConsentRecord.objects.create(
        patient=patient, purpose=purpose, decision=decision, scope_kind=scope_kind,
        scope_value=scope_value,
        effective_from=effective_from, expires_at=expires_at, recorded_at=now,
        source=source, recorded_by_id=actor.user_id, recorded_by_label=actor.label,
        proxy_name=proxy_name, proxy_relationship=proxy_relationship, witness=witness,
        form=form, text_sha256=form.text_sha256,
        attachment_sha256=attachment[0] if attachment else "",
        attachment_name=attachment[1] if attachment else "",
    )
    withdrawal = previous == Decision.PERMIT and decision == Decision.DENY
    ledger.record_drafts([events.consent_recorded(actor=actor, record=record,
                                                  withdrawal=withdrawal)])
    if decision == Decision.DENY:
        # Any deny may withdraw studies already delivered (a narrower scope, a parent
        # purpose): whoever holds data decides what it affects, after commit.
        outbox_publish(kind=CONSENT_CHANGED, payload={"record_id": record.pk})
    return record


def consent_withdraw(*, patient: Patient, purpose: Purpose, actor: Actor, source: str,
                     form: ConsentForm, scope_kind: str = ScopeKind.ALL, scope_value: str = "",
                     proxy_name: str = "", proxy_relationship: str = "") -> ConsentRecord:
    """Say no from now on, for this purpose and scope: as easy as saying yes."""
    return consent_record(
        patient=patient, purpose=purpose, decision=Decision.DENY, actor=actor, source=source,
        form=form, scope_kind=scope_kind, scope_value=scope_value, proxy_name=proxy_name,
        proxy_relationship=proxy_relationship)


@transaction.atomic
def consent_reaffirm(*, patient: Patient, actor: Actor, form: ConsentForm, source: str,
                     proxy_name: str = "", proxy_relationship: str = "") -> list[ConsentRecord]:
    """Keep every choice in force, now under the current consent text: one new record each,
    same decision, scope and expiry."""
    from consent.selectors import live_records

    now = timezone.now()
    return [
        consent_record(patient=patient, purpose=old.purpose, decision=old.decision,
                       actor=actor, source=source, form=form, scope_kind=old.scope_kind,
                       scope_value=old.scope_value, expires_at=old.expires_at,
                       proxy_name=proxy_name, proxy_relationship=proxy_relationship)
        for old in live_records(patient, now).values() if old.form_id != form.pk
    ]


ATTACHMENT_TYPES = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg"}
ATTACHMENT_MAX_BYTES = 20 * 1024 * 1024


def consent_attachment_store(upload: Any) -> tuple[str, str]:
    """Keep a scanned consent form under its sha256; returns (sha256, original name).

    Written before the consent's transaction: if that rolls back, an unreferenced file stays
    behind, which is harmless (same content, same name) and never half-written."""
    suffix = ATTACHMENT_TYPES.get(getattr(upload, "content_type", ""))
    if suffix is None:
        raise ValidationError({"scanned_form": "attach a PDF, PNG or JPEG scan"})
    if upload.size > ATTACHMENT_MAX_BYTES:
        raise ValidationError({"scanned_form": "the scan is larger than 20 MB"})
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    sha = digest.hexdigest()
    target = settings.DATA_DIR / "consent-forms" / f"{sha}{suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        partial = target.with_suffix(".partial")
        with open(partial, "wb") as out:
            for chunk in upload.chunks():
                out.write(chunk)
        partial.replace(target)
    return sha, (upload.name or "scan")[:200]


@transaction.atomic
def disclosure_record(*, study: ImagingStudy, purpose: Purpose, recipient: str, actor: Actor,
                      legal_basis: str = "") -> Any:
    """Record that a study was shared outside the hospital. Without a legal basis, the
    patient's consent must allow it now; otherwise nothing is recorded."""
    from consent.engine import decide

    recipient = recipient.strip()
    if not recipient:
        raise ValidationError({"recipient": "say who received the data"})
    decision = decide(study, purpose, timezone.now())
    if not decision.allowed and not legal_basis:
        raise ValidationError({"purpose": decision.reason})
    return ledger.record(
        action="disclosure", event_code=codes.EXPORT, actor=actor, patient_ref=study.patient_id,
        study_uid=study.study_uid, purpose_code=purpose.code, legal_basis=legal_basis,
        consent_record_ids=list(decision.record_ids), reason=decision.reason,
        details={"recipient": recipient, "what": study.description or study.modalities})
