import hashlib

from django.contrib import admin
from django.utils import timezone

from audit.admin import ReadOnlyAdmin
from consent.models import ConsentForm, ConsentRecord, Guardianship, Purpose


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    """Purposes are admin-editable; deleting one that records use is refused (PROTECT)."""

    list_display = ("code", "name", "parent", "default_policy", "duo_id", "position")
    list_editable = ("position",)


@admin.register(ConsentForm)
class ConsentFormAdmin(admin.ModelAdmin):
    """A text is never edited once published: changes are a new version."""

    list_display = ("code", "version", "title", "published_at")
    readonly_fields = ("text_sha256", "published_at")

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return ("code", "version", "title", "text", *self.readonly_fields)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.text_sha256 = hashlib.sha256(obj.text.encode()).hexdigest()
            obj.published_at = timezone.now()
        super().save_model(request, obj, form, change)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    """Read-only: records are written by consent_record() and never changed."""

    list_display = ("id", "patient", "purpose", "decision", "scope_kind", "scope_value",
                    "recorded_at", "source")
    list_filter = ("decision", "source", "scope_kind")


admin.site.register(Guardianship)
