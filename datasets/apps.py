from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Datasets and exports"

    def ready(self) -> None:
        from datasets.exports import EXPORT_REQUESTED, export_job_handler
        from outbox.registry import register

        register(EXPORT_REQUESTED, export_job_handler)
