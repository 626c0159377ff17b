from django.urls import path

from registry import api

urlpatterns = [
    path("patients", api.PatientListApi.as_view(), name="api-patients"),
    path("patients/search", api.PatientSearchApi.as_view(), name="api-patients-search"),
    path("studies", api.StudyListApi.as_view(), name="api-studies"),
    path("studies/search", api.StudySearchApi.as_view(), name="api-studies-search"),
    path("studies/ingest", api.StudyIngestApi.as_view(), name="api-study-ingest"),
]
