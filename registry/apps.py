from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Imaging registry"

    def ready(self) -> None:
        from audit.registry import register_patients
        from outbox.registry import register
        from registry.registration import INGEST_REQUESTED, ingest_job_run

        register(INGEST_REQUESTED, lambda payload: ingest_job_run(job_id=payload["job_id"]))
        register_patients(resolver=_patient_refs_for_mrn, labeler=_patient_labels)


def _patient_refs_for_mrn(mrn: str) -> list[str]:
    from registry.models import Patient

    # MRNs are matched whatever their case: auditors type what they read on paper.
    return [str(pk) for pk in Patient.objects.filter(mrn__iexact=mrn.strip())
            .values_list("pk", flat=True)]


def _patient_labels(refs: list[str]) -> dict[str, str]:
    from registry.models import Patient

    ids = [int(r) for r in refs if r.isdigit()]
    return {str(pk): f"{mrn} ({issuer})" for pk, mrn, issuer in
            Patient.objects.filter(pk__in=ids).values_list("pk", "mrn", "issuer")}
