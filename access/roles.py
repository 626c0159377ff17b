"""Who a user is to Consentry. Roles are Django groups so admins manage them as usual."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import models

from access.models import TokenScope
from audit.ledger import Actor


class Role(models.TextChoices):
    PATIENT = "patient", "Patient"
    STAFF = "staff", "Staff"
    STEWARD = "steward", "Data steward"
    AUDITOR = "auditor", "Auditor"
    PRIVACY_OFFICER = "privacy-officer", "Privacy officer"


# What each role may hand to another system: a token's scopes never exceed the union of its
# owner's roles' rows, when it is made and again on every request. API endpoints reached by a
# session may be narrower (scoped() checks they are never wider).
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.PATIENT: frozenset(),
    Role.STAFF: frozenset({TokenScope.CONSENT_READ, TokenScope.CONSENT_WRITE, TokenScope.INGEST}),
    Role.STEWARD: frozenset({TokenScope.CONSENT_READ, TokenScope.INGEST, TokenScope.EXPORT}),
    Role.AUDITOR: frozenset({TokenScope.CONSENT_READ, TokenScope.LEDGER_READ}),
    Role.PRIVACY_OFFICER: frozenset(),
}

# Roles whose sign-in needs a second factor; admins (superusers) need one too.
PRIVILEGED_ROLES = frozenset({Role.STAFF, Role.STEWARD, Role.AUDITOR, Role.PRIVACY_OFFICER})


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


def allowed_scopes(user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """The scopes the user's roles allow today; none for an inactive user."""
    if not user.is_authenticated or not user.is_active:
        return frozenset()
    return frozenset().union(*(ROLE_SCOPES.get(role, frozenset()) for role in user_roles(user)))


def is_privileged(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user's sign-in must include a second factor."""
    return user.is_authenticated and (
        bool(user_roles(user) & PRIVILEGED_ROLES) or user.is_superuser or user.is_staff)


def primary_role(user: AbstractBaseUser | AnonymousUser) -> str:
    """The role the ledger records for this user's actions."""
    held = user_roles(user)
    for role in (Role.AUDITOR, Role.PRIVACY_OFFICER, Role.STEWARD, Role.STAFF, Role.PATIENT):
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


def person_actor(request) -> Actor:
    """The signed-in person behind a page request, as the ledger records them."""
    return Actor.for_user(request.user, role=primary_role(request.user),
                          ip=request.META.get("REMOTE_ADDR"))
