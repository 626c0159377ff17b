from django.urls import path

from consent import desk_views as views

urlpatterns = [
    path("", views.search, name="desk"),
    path("patients/<int:patient_id>/", views.patient, name="desk-patient"),
    path("patients/<int:patient_id>/consent/", views.record_consent, name="desk-consent"),
    path("patients/<int:patient_id>/invite/", views.invite, name="desk-invite"),
    path("tokens/", views.tokens, name="desk-tokens"),
    path("tokens/<int:token_id>/revoke/", views.revoke_token, name="desk-token-revoke"),
]
