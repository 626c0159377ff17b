from django.contrib import admin

from registry.models import ImagingStudy, Patient


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("mrn", "issuer", "name", "user")
    search_fields = ("mrn",)


@admin.register(ImagingStudy)
class ImagingStudyAdmin(admin.ModelAdmin):
    list_display = ("study_uid", "patient", "study_date", "modalities", "body_parts")
    search_fields = ("study_uid", "accession_number")

    def has_delete_permission(self, request, obj=None):
        return False
