"""One factory per kind of ledger event the consent app writes (the saleor pattern).

Each returns a draft; callers write it with ``ledger.record_drafts`` (many at once) in the
transaction of the change it records."""

from typing import Any

from audit import codes, ledger
from audit.ledger import Actor


def consent_recorded(*, actor: Actor, record: Any, withdrawal: bool) -> dict[str, Any]:
    return ledger.event_draft(
        action="consent.withdrawn" if withdrawal else "consent.recorded",
        event_code=codes.PATIENT_RECORD,
        actor=actor,
        patient_ref=record.patient_id,
        study_uid=record.scope_value if record.scope_kind == "study" else "",
        purpose_code=record.purpose.code,
        consent_record_ids=[record.pk],
        details={
            "decision": record.decision,
            "scope_kind": record.scope_kind,
            "scope_value": record.scope_value,
            "effective_from": record.effective_from.isoformat(),
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            "source": record.source,
            "form_version": record.form.version,
            "text_sha256": record.text_sha256,
            "proxy": record.proxy_relationship if record.proxy_name else None,
            "witness": record.witness or None,
            "scanned_form_sha256": record.attachment_sha256 or None,
        },
    )


def portal_invited(*, actor: Actor, invite: Any) -> dict[str, Any]:
    return ledger.event_draft(
        action="portal.invited", actor=actor, patient_ref=invite.patient_id,
        details={"expires_at": invite.expires_at.isoformat()})


def portal_joined(*, actor: Actor, patient_id: int) -> dict[str, Any]:
    return ledger.event_draft(
        action="portal.joined", event_code=codes.USER_AUTHENTICATION, actor=actor,
        patient_ref=patient_id)
