from django.urls import path

from datasets import api

urlpatterns = [
    path("datasets", api.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/preview", api.DatasetPreviewApi.as_view(),
         name="api-dataset-preview"),
    path("datasets/<int:dataset_id>/destination", api.DatasetDestinationApi.as_view(),
         name="api-dataset-destination"),
    path("datasets/<int:dataset_id>/exports", api.ExportCreateApi.as_view(),
         name="api-dataset-exports"),
    path("exports/<int:export_id>", api.ExportDetailApi.as_view(), name="api-export"),
    path("export-keys", api.ExportKeysApi.as_view(), name="api-export-keys"),
    path("exports/<int:export_id>/download", api.ExportDownloadApi.as_view(),
         name="api-export-download"),
]
