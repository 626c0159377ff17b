from django.urls import path

from consent.portal import views

urlpatterns = [
    path("", views.portal_home, name="portal"),
    path("invite/<str:token>/", views.accept_invite, name="portal-invite"),
    path("<int:patient_id>/choices/", views.choices, name="portal-choices"),
    path("<int:patient_id>/choices/change/", views.change, name="portal-change"),
    path("<int:patient_id>/choices/keep/", views.reaffirm, name="portal-reaffirm"),
    path("<int:patient_id>/scans/", views.scans, name="portal-scans"),
    path("<int:patient_id>/scans/<int:study_id>/", views.scan, name="portal-scan"),
    path("<int:patient_id>/choices/receipt/", views.receipt, name="portal-receipt"),
    path("<int:patient_id>/history/", views.history, name="portal-history"),
    path("<int:patient_id>/history/text/<int:form_id>/", views.consent_text,
         name="portal-consent-text"),
    path("<int:patient_id>/uses/", views.uses, name="portal-uses"),
]
