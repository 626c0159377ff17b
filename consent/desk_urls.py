from django.urls import path

from consent import desk_views as views

urlpatterns = [
    path("patients/<int:patient_id>/invite/", views.invite, name="desk-invite"),
]
