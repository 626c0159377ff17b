from django.contrib import admin

from registry.models import ImagingStudy, Patient
from registry.selectors import SearchTermError, patient_search


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("mrn", "issuer", "name", "user")

    def get_search_results(self, request, queryset, search_term):
        # The identifiers are encrypted: search through their blind indexes, as the desk does.
        if not search_term.strip():
            return queryset, False
        try:
            found = patient_search(query=search_term)
        except SearchTermError:
            return queryset.none(), False
        return queryset.filter(pk__in=found.values("pk")), False


@admin.register(ImagingStudy)
class ImagingStudyAdmin(admin.ModelAdmin):
    list_display = ("study_uid", "patient", "study_date", "modalities", "body_parts")
    search_fields = ("study_uid",)

    def has_delete_permission(self, request, obj=None):
        return False
