from django.urls import path

from consent import api

urlpatterns = [
    path("studies/ingest", api.StudyIngestApi.as_view(), name="api-study-ingest"),
    path("consent-checks", api.ConsentCheckApi.as_view(), name="api-consent-checks"),
]
