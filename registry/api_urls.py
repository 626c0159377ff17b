from django.urls import path

from registry import api

urlpatterns = [
    path("patients", api.PatientListApi.as_view(), name="api-patients"),
    path("studies", api.StudyListApi.as_view(), name="api-studies"),
    path("studies/ingest", api.StudyIngestApi.as_view(), name="api-study-ingest"),
]
