"""The admin writes through the same services as everything else (consent/governance.py),
so a policy changed here is a ledger event naming the admin who changed it; what no service
can change is read-only."""

from django.contrib import admin

from access.roles import primary_role
from audit.admin import ReadOnlyAdmin
from audit.ledger import Actor
from consent.governance import (
    PURPOSE_FIELDS,
    consent_form_publish,
    guardianship_create,
    guardianship_end,
    purpose_create,
    purpose_update,
)
from consent.models import ConsentForm, ConsentRecord, Guardianship, Purpose


def _actor(request) -> Actor:
    return Actor.for_user(request.user, role=primary_role(request.user) or "admin",
                          ip=request.META.get("REMOTE_ADDR"))


def _adopt(obj, saved) -> None:
    """The admin goes on with its own object (messages, redirects): give it the row the
    service wrote."""
    obj.pk = saved.pk
    obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    """Purposes are admin-editable through purpose_create/purpose_update; their code is
    their identity in the ledger and never changes; they are never deleted."""

    list_display = ("code", "name", "parent", "default_policy", "duo_id", "position")
    list_editable = ("position",)

    def get_readonly_fields(self, request, obj=None):
        return ("code",) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        if change:
            changes = {f: getattr(obj, f) for f in form.changed_data if f in PURPOSE_FIELDS}
            saved = purpose_update(purpose=obj, actor=_actor(request), **changes)
        else:
            saved = purpose_create(actor=_actor(request), code=obj.code,
                                   **{f: getattr(obj, f) for f in PURPOSE_FIELDS})
        _adopt(obj, saved)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentForm)
class ConsentFormAdmin(admin.ModelAdmin):
    """A text is never edited once published: a change is a new version, numbered by
    consent_form_publish."""

    list_display = ("code", "version", "title", "published_at")
    fields = ("code", "title", "text")

    def save_model(self, request, obj, form, change):
        saved = consent_form_publish(code=obj.code, title=obj.title, text=obj.text,
                                     actor=_actor(request))
        _adopt(obj, saved)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentRecord)
class ConsentRecordAdmin(ReadOnlyAdmin):
    """Read-only: records are written by consent_record() and never changed."""

    list_display = ("id", "patient", "purpose", "decision", "scope_kind", "scope_value",
                    "recorded_at", "source")
    list_filter = ("decision", "source", "scope_kind")


@admin.register(Guardianship)
class GuardianshipAdmin(admin.ModelAdmin):
    """Granted and ended through consent/governance.py (each a ledger event); to change a
    relationship, end the guardianship and grant it again."""

    list_display = ("patient", "user", "relationship", "created_at")
    fields = ("patient", "user", "relationship")

    def save_model(self, request, obj, form, change):
        saved = guardianship_create(patient=obj.patient, user=obj.user,
                                    relationship=obj.relationship, actor=_actor(request))
        _adopt(obj, saved)

    def delete_model(self, request, obj):
        guardianship_end(guardianship=obj, actor=_actor(request))

    def delete_queryset(self, request, queryset):
        for guardianship in queryset.order_by("pk"):
            guardianship_end(guardianship=guardianship, actor=_actor(request))

    def has_change_permission(self, request, obj=None):
        return False
