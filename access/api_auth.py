"""How API callers are identified and what they may do: sessions (with CSRF) for people,
bearer tokens with scopes for systems."""

from django.core.exceptions import ImproperlyConfigured
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from access.models import ApiToken, TokenScope
from access.roles import ROLE_SCOPES, Role, allowed_scopes, has_role, primary_role
from access.tokens import TokenRejected, api_token_authenticate
from audit.ledger import Actor


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, presented = header.partition(" ")
        if keyword != self.keyword or not presented.strip():
            raise exceptions.AuthenticationFailed(
                "Send the token as 'Authorization: Bearer <token>'.")
        try:
            token = api_token_authenticate(presented.strip())
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return token.owner, token

    def authenticate_header(self, request):
        return self.keyword


def scoped(scope: str, *session_roles: str) -> type[BasePermission]:
    """Tokens need ``scope``, and an owner whose roles still allow it (a role removed
    disables its tokens at once); signed-in people need one of ``session_roles``."""
    wider = [role for role in session_roles if scope not in ROLE_SCOPES[role]]
    if wider:
        # A session must never reach what the same person could not give a token.
        raise ImproperlyConfigured(f"{wider} may not use '{scope}' (access.roles.ROLE_SCOPES)")

    class Scoped(BasePermission):
        message = (f"This needs the '{scope}' scope (API token) or the role "
                   f"{' or '.join(session_roles)} (signed in).")

        def has_permission(self, request, view) -> bool:
            if isinstance(request.auth, ApiToken):
                if scope not in request.auth.scopes:
                    return False
                if scope not in allowed_scopes(request.auth.owner):
                    self.message = (f"The owner of this token no longer holds a role that "
                                    f"allows '{scope}'.")
                    return False
                return True
            return bool(request.user and request.user.is_authenticated
                        and has_role(request.user, *session_roles))

    Scoped.__name__ = f"Scoped_{scope.replace(':', '_')}"
    return Scoped


# Reading patients, studies and consent records: systems with consent:read, or people whose
# work needs it.
ReadsPatientData = scoped(TokenScope.CONSENT_READ, Role.STAFF, Role.STEWARD, Role.AUDITOR)


def request_actor(request) -> Actor:
    token = request.auth if isinstance(request.auth, ApiToken) else None
    return Actor.for_user(request.user, role="system" if token else primary_role(request.user),
                          ip=request.META.get("REMOTE_ADDR"),
                          api_token=token.prefix if token else "")


class ApiTokenScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI schema describes token authentication."""

    target_class = "access.api_auth.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "An API token made by staff: 'Authorization: Bearer cst_…'."}
