"""One factory per kind of ledger event the consent app writes (the saleor pattern).

Each returns a draft; callers write it with ``ledger.record_drafts`` (many at once) in the
transaction of the change it records."""

from typing import Any

from audit import codes, ledger
from audit.ledger import Actor
from audit.vouching import unvouch, vouch, vouched_details
from consent import vouched


def consent_recorded(*, actor: Actor, record: Any, withdrawal: bool) -> dict[str, Any]:
    return ledger.event_draft(
        action="consent.withdrawn" if withdrawal else "consent.recorded",
        event_code=codes.PATIENT_RECORD,
        actor=actor,
        patient_ref=record.patient_id,
        study_uid=record.scope_value if record.scope_kind == "study" else "",
        purpose_code=record.purpose.code,
        consent_record_ids=[record.pk],
        details=vouched_details({
            "decision": record.decision,
            "scope_kind": record.scope_kind,
            "scope_value": record.scope_value,
            "effective_from": record.effective_from.isoformat(),
            "expires_at": record.expires_at.isoformat() if record.expires_at else None,
            "source": record.source,
            "form_version": record.form.version,
            "text_sha256": record.text_sha256,
            "proxy": record.proxy_relationship if record.proxy_name else None,
            # Whether a witness signed, not who: the name is encrypted on the record, and
            # the ledger (append-only, kept for ever) must not hold it in clear.
            "witnessed": bool(record.witness),
            "scanned_form_sha256": record.attachment_sha256 or None,
        }, vouch(table=vouched.RECORD, row=record)),
    )


def portal_invited(*, actor: Actor, invite: Any) -> dict[str, Any]:
    return ledger.event_draft(
        action="portal.invited", actor=actor, patient_ref=invite.patient_id,
        details={"expires_at": invite.expires_at.isoformat()})


def portal_joined(*, actor: Actor, patient_id: int) -> dict[str, Any]:
    return ledger.event_draft(
        action="portal.joined", event_code=codes.USER_AUTHENTICATION, actor=actor,
        patient_ref=patient_id)


def purpose_saved(*, actor: Actor, purpose: Any, changes: dict[str, Any],
                  created: bool) -> dict[str, Any]:
    """A purpose created or changed (policy, place in the tree, wording): ``changes`` maps
    each changed field to [before, after]."""
    return ledger.event_draft(
        action="purpose.created" if created else "purpose.changed", actor=actor,
        purpose_code=purpose.code,
        details=vouched_details({"changes": changes},
                                vouch(table=vouched.PURPOSE, row=purpose)))


def form_published(*, actor: Actor, form: Any) -> dict[str, Any]:
    return ledger.event_draft(
        action="consent_form.published", actor=actor,
        details=vouched_details({"code": form.code, "version": form.version,
                                 "text_sha256": form.text_sha256},
                                vouch(table=vouched.FORM, row=form)))


def guardianship_granted(*, actor: Actor, guardianship: Any) -> dict[str, Any]:
    return ledger.event_draft(
        action="guardianship.granted", actor=actor, patient_ref=guardianship.patient_id,
        details=vouched_details({"user": guardianship.user_id,
                                 "relationship": guardianship.relationship},
                                vouch(table=vouched.GUARDIANSHIP, row=guardianship)))


def guardianship_ended(*, actor: Actor, guardianship: Any) -> dict[str, Any]:
    return ledger.event_draft(
        action="guardianship.ended", actor=actor, patient_ref=guardianship.patient_id,
        details=vouched_details({"user": guardianship.user_id,
                                 "relationship": guardianship.relationship},
                                unvouch(table=vouched.GUARDIANSHIP,
                                        row_id=guardianship.pk)))
