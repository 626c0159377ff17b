from django.urls import path

from consent.api import checks, fhir, resources

urlpatterns = [
    path("patients/<int:patient_id>/consents", resources.PatientConsentListApi.as_view(),
         name="api-patient-consents"),
    path("purposes", resources.PurposeListApi.as_view(), name="api-purposes"),
    path("consents", resources.ConsentCreateApi.as_view(), name="api-consents"),
    path("consents/withdraw", resources.ConsentWithdrawApi.as_view(),
         name="api-consents-withdraw"),
    path("consent-checks", checks.ConsentCheckApi.as_view(), name="api-consent-checks"),
    path("fhir/Consent", fhir.FhirConsentApi.as_view(), name="api-fhir-consents"),
    path("fhir/Consent/<int:consent_id>", fhir.FhirConsentReadApi.as_view(),
         name="api-fhir-consent"),
]
