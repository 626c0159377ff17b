from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Datasets and exports"

    def ready(self) -> None:
        from consent.services import CONSENT_CHANGED
        from datasets.exports import EXPORT_REQUESTED, export_give_up, export_job_handler
        from datasets.withdrawals import (
            NOTICE_EMAIL,
            consent_changed_handler,
            notice_email_send,
        )
        from outbox.registry import register

        register(EXPORT_REQUESTED, export_job_handler, on_give_up=export_give_up)
        register(CONSENT_CHANGED, consent_changed_handler)
        register(NOTICE_EMAIL, notice_email_send)
        from datasets import vouched

        vouched.register()  # datasets are rows the ledger vouches for
