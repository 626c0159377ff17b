"""API tokens for other systems: create, revoke, authenticate. Writes carry ledger events."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from access.models import ApiToken, TokenScope
from access.roles import allowed_scopes
from audit import ledger
from audit.ledger import Actor

TOKEN_PREFIX = "cst"  # noqa: S105 - a label on every token, not a secret


class TokenRejected(Exception):
    """Why a presented token does not authenticate, in words for the caller."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# The transactions are opened inside the functions, not by decorating them: mutation testing
# (mutmut) leaves decorated functions unchanged, and these are the ones that write.
def api_token_create(*, owner: Any, name: str, scopes: list[str], actor: Actor,
                     expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Returns the token and its full secret, which is never stored and shown only once."""
    with transaction.atomic():
        name = (name or "").strip()
        if not name:
            raise ValidationError({"name": "give the token a name that says who uses it"})
        unknown = sorted(set(scopes) - set(TokenScope.values))
        if unknown or not scopes:
            raise ValidationError({"scopes": f"choose from {', '.join(TokenScope.values)}"
                                             + (f"; unknown: {', '.join(unknown)}" if unknown
                                                else "")})
        beyond = sorted(set(scopes) - allowed_scopes(owner))
        if beyond:
            raise ValidationError({"scopes": f"{owner.get_username()}'s roles do not allow "
                                             f"{', '.join(beyond)}"})
        if expires_at is not None and expires_at <= timezone.now():
            raise ValidationError({"expires_at": "must be in the future"})
        prefix, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        token = ApiToken.objects.create(
            owner=owner, name=name, prefix=prefix, secret_sha256=_digest(secret),
            scopes=sorted(set(scopes)), created_at=timezone.now(), created_by_label=actor.label,
            expires_at=expires_at)
        ledger.record(action="api_token.created", actor=actor, details={
            "token": prefix, "owner": owner.get_username(), "scopes": token.scopes,
            "expires_at": expires_at.isoformat() if expires_at else None})
        return token, f"{TOKEN_PREFIX}_{prefix}_{secret}"


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    with transaction.atomic():
        if token.revoked_at is None:
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            ledger.record(action="api_token.revoked", actor=actor,
                          details={"token": token.prefix, "owner": token.owner.get_username()})
    return token


def api_token_authenticate(presented: str) -> ApiToken:
    """The token a presented secret belongs to, or TokenRejected."""
    parts = presented.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenRejected("Malformed API token.")
    _, prefix, secret = parts
    # Prefixes are 12 hex digits (token_hex(6)); anything else is looked up nowhere, so a NUL
    # never reaches PostgreSQL (a 500) whatever server sits in front.
    well_formed = re.fullmatch(r"[0-9a-f]{12}", prefix) is not None
    token = ApiToken.objects.select_related("owner").filter(prefix=prefix).first() \
        if well_formed else None
    # Compare digests in constant time whether or not the prefix exists.
    expected = token.secret_sha256 if token else "0" * 64
    if not hmac.compare_digest(expected, _digest(secret)) or token is None:
        raise TokenRejected("Invalid API token.")
    now = timezone.now()
    if token.revoked_at is not None:
        raise TokenRejected("This API token has been revoked.")
    if token.expires_at is not None and token.expires_at <= now:
        raise TokenRejected("This API token has expired.")
    if not token.owner.is_active:
        raise TokenRejected("The owner of this API token is inactive.")
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        # At most one write a minute per token: usage is visible without a write per call.
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
