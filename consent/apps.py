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

        from audit.registry import register_patients

        register_patients(resolver=_patient_refs_for_mrn, labeler=_patient_labels)


def _patient_refs_for_mrn(mrn: str) -> list[str]:
    from consent.models import Patient

    return [str(pk) for pk in Patient.objects.filter(mrn=mrn).values_list("pk", flat=True)]


def _patient_labels(refs: list[str]) -> dict[str, str]:
    from consent.models import Patient

    ids = [int(r) for r in refs if r.isdigit()]
    return {str(pk): f"{mrn} ({issuer})" for pk, mrn, issuer in
            Patient.objects.filter(pk__in=ids).values_list("pk", "mrn", "issuer")}
