from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent registry"

    def ready(self) -> None:
        from consent.registration import INGEST_REQUESTED, ingest_job_run
        from consent.reminders import EXPIRY_REMINDER, expiry_reminder_send
        from outbox.registry import register

        register(INGEST_REQUESTED, lambda payload: ingest_job_run(job_id=payload["job_id"]))
        register(EXPIRY_REMINDER, expiry_reminder_send)
