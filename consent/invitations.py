"""Inviting a patient to the portal: a one-time link, mailed to the patient only, to set
the password of a new account. Only the token's hash is stored; inviting and joining are
ledger events. A patient who has an account resets their password themselves."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from access.grants import role_grant
from access.roles import Role
from audit import ledger
from audit.ledger import Actor
from consent import events
from consent.models import PatientInvite
from outbox.services import outbox_publish
from registry.models import Patient

INVITE_LIFETIME = timedelta(hours=72)
INVITE_EMAIL = "portal.invite_email"


class InviteInvalid(Exception):
    """The link cannot be used; ``reason`` says why in words for the patient."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def patient_invite(*, patient: Patient, email: str, actor: Actor) -> PatientInvite:
    """Invite a patient who has no portal account yet. The link goes only to the patient's
    email, after commit, through the outbox: staff never see it, and it is stored nowhere
    (only its hash is kept)."""
    if patient.user_id is not None:
        raise ValidationError({"email": "this patient already has a portal account; they can "
                                        "reset their own password from the sign-in page"})
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError({"email": "enter a valid email address"}) from None
    now = timezone.now()
    invite = PatientInvite.objects.create(
        patient=patient, email=email.strip().lower(), created_at=now,
        expires_at=now + INVITE_LIFETIME, created_by_label=actor.label)
    ledger.record_drafts([events.portal_invited(actor=actor, invite=invite)])
    outbox_publish(kind=INVITE_EMAIL, payload={"invite_id": invite.pk})
    return invite


def invite_email_send(payload: dict[str, Any]) -> None:
    """Outbox handler: make the link and mail it. Delivery is at least once, so a retry
    makes a new link (the hash is replaced) and an earlier, unsent one stops working."""
    invite = PatientInvite.objects.filter(pk=payload["invite_id"]).first()
    if invite is None or invite.sent_at or invite.used_at or invite.expires_at <= timezone.now():
        return
    token = secrets.token_urlsafe(32)
    PatientInvite.objects.filter(pk=invite.pk).update(token_sha256=_token_hash(token))
    link = settings.CONSENTRY_BASE_URL.rstrip("/") + reverse("portal-invite", args=[token])
    send_mail(
        subject="Your invitation to the patient portal",
        message=("The hospital invites you to its patient portal, where you choose how your "
                 "scans may be used and see every use of them.\n\n"
                 f"Set your password here (the link works once, until "
                 f"{invite.expires_at:%d %B %Y %H:%M} UTC):\n{link}\n\n"
                 "If you did not expect this message, you can ignore it.\n"),
        from_email=None, recipient_list=[invite.email])
    PatientInvite.objects.filter(pk=invite.pk).update(sent_at=timezone.now())


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
    """Use the link once: a new portal account for the patient, with this password."""
    invite = invite_check(token=token)
    # Lock the invite row: two tabs submitting at once must not both succeed.
    invite = PatientInvite.objects.select_for_update().get(pk=invite.pk)
    if invite.used_at is not None:
        raise InviteInvalid("This link has already been used.")
    patient = invite.patient
    if patient.user_id is not None:
        # An invitation never takes over an account, even one made after it was sent.
        raise InviteInvalid("You already have an account. Sign in, or reset your password "
                            "from the sign-in page.")
    user = get_user_model().objects.create_user(username=_free_username(invite.email),
                                                email=invite.email)
    role_grant(user=user, role=Role.PATIENT, actor=Actor.for_user(user, role=Role.PATIENT, ip=ip))
    patient.user = user
    patient.save(update_fields=["user"])
    # Validated once linked, so the validators can compare it with the patient's name and
    # MRN; a refused password rolls the new account back with the transaction.
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
