"""Password resets through the person's own email, and the rules a password must meet.

The reset email is built by an outbox handler after the request, so neither the link nor
its token is ever stored: the message carries only the user's id."""

from __future__ import annotations

import difflib
import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from audit import codes, ledger
from audit.ledger import Actor
from audit.models import Outcome
from outbox.services import outbox_publish

PASSWORD_RESET_EMAIL = "access.password_reset_email"  # noqa: S105 - an outbox kind


class OutboxPasswordResetForm(PasswordResetForm):
    """Django's form, but the email leaves through the outbox and each request is logged."""

    def save(self, *args: Any, request=None, **kwargs: Any) -> None:
        ip = request.META.get("REMOTE_ADDR") if request else None
        with transaction.atomic():
            users = list(self.get_users(self.cleaned_data["email"]))
            for user in users:
                ledger.record(action="password_reset.requested",
                              event_code=codes.USER_AUTHENTICATION,
                              actor=Actor.for_user(user, role="", ip=ip))
                outbox_publish(kind=PASSWORD_RESET_EMAIL, payload={"user_id": user.pk})
            if not users:
                # The page answers alike either way; the ledger keeps the attempt.
                ledger.record(action="password_reset.requested",
                              event_code=codes.USER_AUTHENTICATION, outcome=Outcome.FAILURE,
                              actor=Actor(label="(no account with that address)", ip=ip))


def password_reset_email_send(payload: dict[str, Any]) -> None:
    """Outbox handler: a fresh reset link for the user, to their own address."""
    user = get_user_model().objects.filter(pk=payload["user_id"], is_active=True).first()
    if user is None or not user.email or not user.has_usable_password():
        return
    link = settings.CONSENTRY_BASE_URL.rstrip("/") + reverse(
        "password-reset-confirm", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                                          "token": default_token_generator.make_token(user)})
    send_mail(
        subject="Resetting your Consentry password",
        message=(f"Someone asked to reset the password of the account {user.get_username()}."
                 f"\n\nChoose a new password here:\n{link}\n\nThe link works once. If you did "
                 "not ask for this, ignore this message: your password stays as it is.\n"),
        from_email=None, recipient_list=[user.email])


class PersonalDataSimilarityValidator:
    """Refuses a password close to the person's own name, MRN, username or email: the
    things an attacker who knows the patient would try first."""

    def __init__(self, max_similarity: float = 0.7):
        self.max_similarity = max_similarity

    def validate(self, password: str, user: Any = None) -> None:
        if user is None:
            return
        lowered = password.lower()
        for value in _personal_values(user):
            for part in {value, *re.split(r"\W+", value)}:
                if len(part) < 3:
                    continue
                if part in lowered or difflib.SequenceMatcher(
                        a=lowered, b=part).quick_ratio() >= self.max_similarity:
                    raise ValidationError(
                        "The password is too close to your name, username, email or "
                        "record number.", code="password_too_personal")

    def get_help_text(self) -> str:
        return "Your password can't be close to your name, username, email or record number."


def _personal_values(user: Any) -> list[str]:
    values = [user.get_username(), getattr(user, "email", ""),
              getattr(user, "first_name", ""), getattr(user, "last_name", "")]
    # The patient record linked to a portal account (registry's reverse accessor), read
    # without importing the registry, which sits above this app.
    patient = getattr(user, "patient", None) if user.pk else None
    if patient is not None:
        values += [patient.name.replace("^", " "), patient.mrn]
    return [v.lower().strip() for v in values if v and v.strip()]
