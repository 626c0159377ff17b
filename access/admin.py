from django.contrib import admin, messages

from access.models import ApiToken
from access.roles import allowed_scopes
from access.tokens import api_token_revoke
from audit.admin import ReadOnlyAdmin
from audit.ledger import Actor


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are made by their owners (or create_api_token); admins see and revoke any.
    Revoking goes through the service, so it is a ledger event."""

    list_display = ("prefix", "name", "owner", "scopes", "disabled_scopes", "created_at",
                    "expires_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "owner__username")
    actions = ["revoke"]

    @admin.display(description="disabled (owner's roles no longer allow)")
    def disabled_scopes(self, token: ApiToken) -> str:
        return ", ".join(sorted(set(token.scopes) - allowed_scopes(token.owner))) or "—"

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        actor = Actor.for_user(request.user, role="admin", ip=request.META.get("REMOTE_ADDR"))
        for token in queryset.select_related("owner"):
            api_token_revoke(token=token, actor=actor)
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)
