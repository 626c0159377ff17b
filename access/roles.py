"""Who a user is to Consentry. Roles are Django groups so admins manage them as usual."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import models


class Role(models.TextChoices):
    PATIENT = "patient", "Patient"
    STAFF = "staff", "Staff"
    STEWARD = "steward", "Data steward"
    AUDITOR = "auditor", "Auditor"


def user_roles(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    cached = getattr(user, "_consentry_roles", None)
    if cached is None:
        cached = set(user.groups.filter(name__in=Role.values).values_list("name", flat=True))
        user._consentry_roles = cached
    return cached


def has_role(user: AbstractBaseUser | AnonymousUser, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def primary_role(user: AbstractBaseUser | AnonymousUser) -> str:
    """The role the ledger records for this user's actions."""
    held = user_roles(user)
    for role in (Role.AUDITOR, Role.STEWARD, Role.STAFF, Role.PATIENT):
        if role in held:
            return role
    return "admin" if getattr(user, "is_superuser", False) else ""


def role_required(*roles: str):
    """A view decorator: sign in first, then 403 unless the user holds one of ``roles``."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
