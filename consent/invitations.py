"""Inviting a patient to the portal: a one-time link to set a password. Only the token's
hash is stored; using the link is a ledger event."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from access.grants import role_grant
from access.roles import Role
from audit import ledger
from audit.ledger import Actor
from consent import events
from consent.models import PatientInvite
from registry.models import Patient

INVITE_LIFETIME = timedelta(hours=72)


class InviteInvalid(Exception):
    """The link cannot be used; ``reason`` says why in words for the patient."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def patient_invite(*, patient: Patient, email: str, actor: Actor) -> tuple[PatientInvite, str]:
    """A one-time link for the patient to set a password. Returns the invite and the raw
    token, which is stored nowhere: only its hash is kept."""
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "enter a valid email address"}) from None
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    invite = PatientInvite.objects.create(
        patient=patient, email=email.strip().lower(), token_sha256=_token_hash(token),
        created_at=now, expires_at=now + INVITE_LIFETIME, created_by_label=actor.label)
    ledger.record_drafts([events.portal_invited(actor=actor, invite=invite)])
    return invite, token


def invite_check(*, token: str) -> PatientInvite:
    invite = (PatientInvite.objects.select_related("patient")
              .filter(token_sha256=_token_hash(token)).first())
    if invite is None:
        raise InviteInvalid("This link is not valid. Please ask the hospital for a new one.")
    if invite.used_at is not None:
        raise InviteInvalid("This link has already been used. Sign in with your password, "
                            "or ask the hospital for a new link.")
    if invite.expires_at <= timezone.now():
        raise InviteInvalid("This link has expired (links last 72 hours). Please ask the "
                            "hospital for a new one.")
    return invite


@transaction.atomic
def invite_accept(*, token: str, password: str, ip: str | None = None) -> Any:
    """Use the link once: the patient's portal account gets this password."""
    invite = invite_check(token=token)
    # Lock the invite row: two tabs submitting at once must not both succeed.
    invite = PatientInvite.objects.select_for_update().get(pk=invite.pk)
    if invite.used_at is not None:
        raise InviteInvalid("This link has already been used.")
    patient = invite.patient
    user = patient.user
    if user is None:
        user = get_user_model().objects.create_user(username=_free_username(invite.email),
                                                    email=invite.email)
        role_grant(user=user, role=Role.PATIENT,
                   actor=Actor.for_user(user, role=Role.PATIENT, ip=ip))
        patient.user = user
        patient.save(update_fields=["user"])
    password_validation.validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    invite.used_at = timezone.now()
    invite.save(update_fields=["used_at"])
    ledger.record_drafts([events.portal_joined(
        actor=Actor.for_user(user, role=Role.PATIENT, ip=ip), patient_id=patient.pk)])
    return user


def _free_username(email: str) -> str:
    User = get_user_model()
    base = email.split("@")[0][:100] or "patient"
    candidate, n = base, 1
    while User.objects.filter(username=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate
