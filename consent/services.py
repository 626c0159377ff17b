"""Writes to consent. Each is one transaction with its ledger event; ``grep consent_`` lists
everything that can change what a patient chose."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from consent import events
from consent.models import (
    ConsentForm,
    ConsentRecord,
    Decision,
    ImagingStudy,
    Patient,
    Purpose,
    ScopeKind,
    Source,
)


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
    if len(value) > 64 or not value.replace(" ", "").replace("-", "").isalnum():
        raise ValidationError({"scope_value": f"not a valid {scope_kind}: {value[:80]!r}"})
    return value.upper()  # scopes compare case-insensitively


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
    withdrawal: bool = False,
) -> ConsentRecord:
    """Record one choice. Nothing is edited: a change of mind is a newer record."""
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
    record = ConsentRecord.objects.create(
        patient=patient, purpose=purpose, decision=decision, scope_kind=scope_kind,
        scope_value=normalise_scope(patient=patient, scope_kind=scope_kind,
                                    scope_value=scope_value),
        effective_from=effective_from, expires_at=expires_at, recorded_at=now,
        source=source, recorded_by_id=actor.user_id, recorded_by_label=actor.label,
        proxy_name=proxy_name, proxy_relationship=proxy_relationship, witness=witness,
        form=form, text_sha256=form.text_sha256,
    )
    ledger.record_drafts([events.consent_recorded(actor=actor, record=record,
                                                  withdrawal=withdrawal)])
    return record


def consent_withdraw(*, patient: Patient, purpose: Purpose, actor: Actor, source: str,
                     form: ConsentForm, scope_kind: str = ScopeKind.ALL, scope_value: str = "",
                     proxy_name: str = "", proxy_relationship: str = "") -> ConsentRecord:
    """Say no from now on, for this purpose and scope: as easy as saying yes."""
    return consent_record(
        patient=patient, purpose=purpose, decision=Decision.DENY, actor=actor, source=source,
        form=form, scope_kind=scope_kind, scope_value=scope_value, proxy_name=proxy_name,
        proxy_relationship=proxy_relationship, withdrawal=True)


def current_form(code: str = "imaging-use") -> ConsentForm:
    return ConsentForm.objects.filter(code=code).order_by("-version").first()
