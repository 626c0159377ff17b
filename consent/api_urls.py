from django.urls import path

from consent import api, api_resources

urlpatterns = [
    path("patients", api_resources.PatientListApi.as_view(), name="api-patients"),
    path("patients/<int:patient_id>/consents", api_resources.PatientConsentListApi.as_view(),
         name="api-patient-consents"),
    path("studies", api_resources.StudyListApi.as_view(), name="api-studies"),
    path("purposes", api_resources.PurposeListApi.as_view(), name="api-purposes"),
    path("consents", api_resources.ConsentCreateApi.as_view(), name="api-consents"),
    path("consents/withdraw", api_resources.ConsentWithdrawApi.as_view(),
         name="api-consents-withdraw"),
    path("studies/ingest", api.StudyIngestApi.as_view(), name="api-study-ingest"),
    path("consent-checks", api.ConsentCheckApi.as_view(), name="api-consent-checks"),
]
