from django.urls import path

from consent.desk import views

urlpatterns = [
    path("", views.search, name="desk"),
    path("patients/<int:patient_id>/", views.patient, name="desk-patient"),
    path("patients/<int:patient_id>/consent/", views.record_consent, name="desk-consent"),
    path("patients/<int:patient_id>/invite/", views.invite, name="desk-invite"),
]
