from django.urls import path

from datasets import views

urlpatterns = [
    path("", views.dataset_list, name="datasets"),
    path("new/", views.dataset_new, name="dataset-new"),
    path("approvals/", views.approvals, name="dataset-approvals"),
    path("<int:dataset_id>/decide/", views.dataset_decide, name="dataset-decide"),
    path("<int:dataset_id>/", views.dataset_detail, name="dataset"),
    path("<int:dataset_id>/preview/", views.dataset_preview, name="dataset-preview"),
    path("<int:dataset_id>/run/", views.dataset_run, name="dataset-run"),
    path("<int:dataset_id>/destination/", views.dataset_destination,
         name="dataset-destination"),
    path("notices/<int:notice_id>/confirm/", views.withdrawal_confirm_view,
         name="withdrawal-confirm"),
    path("versions/<int:version_id>/", views.version_detail, name="dataset-version"),
    path("versions/<int:version_id>/progress/", views.version_progress,
         name="dataset-version-progress"),
    path("versions/<int:version_id>/download/", views.version_zip,
         name="dataset-version-download"),
]
