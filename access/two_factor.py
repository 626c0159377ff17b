"""The second factor of a sign-in: TOTP from an authenticator app, with single-use recovery
codes (django-otp). Required for privileged roles and admins, offered to everyone else;
API tokens are unaffected. Enrolment and every verification are ledger events."""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from access.roles import is_privileged
from audit import codes, ledger
from audit.ledger import Actor
from audit.models import Outcome

RECOVERY_CODES = 10
AUTHENTICATOR = "authenticator"
RECOVERY = "recovery codes"


def needs_second_factor(user: Any) -> bool:
    """Privileged people must use one; anyone who set one up uses it too."""
    return user.is_authenticated and (is_privileged(user) or user_has_device(user))


def is_verified(user: Any) -> bool:
    """Set by django-otp's middleware once this session passed the second factor."""
    check = getattr(user, "is_verified", None)
    return bool(check and check())


def authenticator_draft(user: Any, key: str | None = None) -> TOTPDevice:
    """An authenticator not saved yet: the page shows its key, and it is saved only when
    the person proves their app holds it (looking at the page changes nothing)."""
    return TOTPDevice(user=user, name=AUTHENTICATOR, confirmed=True,
                      **({"key": key} if key else {}))


@transaction.atomic
def two_factor_enrol(*, user: Any, key: str, code: str,
                     actor: Actor) -> tuple[TOTPDevice, list[str]]:
    """Save the authenticator whose ``key`` the person's app now holds, checked with a code
    from it; returns it and fresh recovery codes (shown once). Any earlier authenticator
    and codes are replaced."""
    device = authenticator_draft(user, key)
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    code = _digits(code)
    if not (_all_digits(code) and totp.verify(int(code), device.tolerance)):
        raise ValidationError({"code": "That code is not right. Enter the 6 digits your app "
                                       "shows now."})
    device.last_t = totp.t()  # this code is used up
    TOTPDevice.objects.filter(user=user).delete()
    device.save()
    StaticDevice.objects.filter(user=user).delete()
    recovery = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
    tokens = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create([StaticToken(device=recovery, token=t) for t in tokens])
    ledger.record(action="two_factor.enrolled", event_code=codes.USER_AUTHENTICATION,
                  actor=actor, details={"recovery_codes": RECOVERY_CODES})
    return device, tokens


def two_factor_verify(*, user: Any, code: str, actor: Actor) -> Any | None:
    """The device that accepts ``code`` (a 6-digit code, or a recovery code used up now),
    or None. Devices throttle repeated failures themselves."""
    code = (code or "").strip().replace(" ", "").lower()
    kind = TOTPDevice if _all_digits(_digits(code)) and len(_digits(code)) == 6 else StaticDevice
    with transaction.atomic():
        accepted = next((device for device in devices_for_user(user, for_verify=True)
                         if isinstance(device, kind) and device.verify_token(
                             _digits(code) if kind is TOTPDevice else code)), None)
        ledger.record(action="login.second_factor", event_code=codes.USER_AUTHENTICATION,
                      actor=actor, outcome=Outcome.SUCCESS if accepted else Outcome.FAILURE,
                      details={"method": "recovery code" if kind is StaticDevice
                               else "authenticator"},
                      reason="" if accepted else "wrong or reused code")
    return accepted


def recovery_codes_left(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def _digits(code: str) -> str:
    return "".join((code or "").split())


def _all_digits(code: str) -> bool:
    # ASCII only: str.isdigit() also accepts "²" and "①", which int() refuses (a 500).
    return re.fullmatch(r"[0-9]+", code) is not None
