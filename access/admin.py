"""The admin's pages for access: API tokens (read-only, revoked through the service) and
the user page, whose roles (groups) change through access/grants.py, so each grant and
revocation is a ledger event naming the admin; users are deactivated rather than deleted,
because a deleted user's grants would vanish without one."""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from access.grants import roles_set
from access.models import ApiToken
from access.roles import allowed_scopes, person_actor
from access.tokens import api_token_revoke
from audit.admin import ReadOnlyAdmin

User = get_user_model()



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
        actor = person_actor(request)
        for token in queryset.select_related("owner"):
            api_token_revoke(token=token, actor=actor)
        self.message_user(request, f"{queryset.count()} token(s) revoked.", messages.SUCCESS)


class LedgeredUserAdmin(UserAdmin):
    def save_related(self, request, form, formsets, change):
        # Take the groups out of the form's own many-to-many save, then apply them through
        # the service, inside the admin's transaction.
        groups = form.cleaned_data.pop("groups", None)
        super().save_related(request, form, formsets, change)
        if groups is not None:
            roles_set(user=form.instance, groups=groups, actor=person_actor(request))

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(User)
admin.site.register(User, LedgeredUserAdmin)
