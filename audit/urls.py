from django.urls import path

from audit import views

urlpatterns = [
    path("", views.dashboard, name="audit-dashboard"),
    path("verify/", views.verify_now, name="audit-verify"),
    path("events/", views.events, name="audit-events"),
    path("events/<int:event_id>/", views.event_detail, name="audit-event"),
    path("disclosures/", views.disclosures, name="audit-disclosures"),
    path("export/", views.export, name="audit-export"),
]
