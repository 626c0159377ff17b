"""The admin's user page changes roles (groups) through access/grants.py, so each grant and
revocation is a ledger event naming the admin; users are deactivated rather than deleted,
because a deleted user's grants would vanish without one."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from access.grants import roles_set
from access.roles import primary_role
from audit.ledger import Actor

User = get_user_model()


class LedgeredUserAdmin(UserAdmin):
    def save_related(self, request, form, formsets, change):
        # Take the groups out of the form's own many-to-many save, then apply them through
        # the service, inside the admin's transaction.
        groups = form.cleaned_data.pop("groups", None)
        super().save_related(request, form, formsets, change)
        if groups is not None:
            actor = Actor.for_user(request.user, role=primary_role(request.user) or "admin",
                                   ip=request.META.get("REMOTE_ADDR"))
            roles_set(user=form.instance, groups=groups, actor=actor)

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(User)
admin.site.register(User, LedgeredUserAdmin)
