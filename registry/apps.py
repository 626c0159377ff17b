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
    from registry.selectors import patients_by_mrn

    # Through the blind index: case and spaces in what the auditor typed do not matter.
    return [str(pk) for pk in patients_by_mrn(mrn).values_list("pk", flat=True)]


def _patient_labels(refs: list[str]) -> dict[str, str]:
    from registry.models import Patient

    ids = [int(r) for r in refs if r.isdigit()]
    # Model instances, not values_list: the MRN is decrypted by its field on the way out.
    return {str(p.pk): f"{p.mrn} ({p.issuer})" for p in
            Patient.objects.filter(pk__in=ids).only("pk", "mrn", "issuer")}
