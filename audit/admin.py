from django.contrib import admin

from audit.models import AuditEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """For append-only tables: the database refuses edits anyway; the admin doesn't offer
    them."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Read-only: the ledger has no edit path, not even for superusers."""

    list_display = ("id", "occurred_at", "action", "outcome", "actor_label", "patient_ref",
                    "study_uid")
    list_filter = ("action", "outcome")
    search_fields = ("study_uid", "patient_ref", "actor_label", "correlation_id")
