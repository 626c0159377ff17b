from django.apps import AppConfig
from django.conf import settings
from django.core import checks

# The keys the Makefile and CI use for test runs: published, so never a hospital's.
PUBLISHED_TEST_KEYS = frozenset({"Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE="})


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Imaging registry"

    def ready(self) -> None:
        from audit.registry import register_patients
        from outbox.registry import register
        from registry.ingest_jobs import INGEST_REQUESTED, ingest_message_run

        register(INGEST_REQUESTED, ingest_message_run)
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


@checks.register(checks.Tags.security, deploy=True)
def identifier_keys_configured(app_configs, **kwargs):
    """Patients' identifiers are only as safe as the keys: they must come from the
    hospital's secret store, be random, and be two different keys (start-up already
    refuses missing or malformed ones in production)."""
    problems = []
    keys, index_key = settings.CONSENTRY_IDENTIFIER_KEYS, settings.CONSENTRY_BLIND_INDEX_KEY
    if settings.CONSENTRY_IDENTIFIER_KEYS_GENERATED:
        problems.append("they were generated in the data directory, beside the database "
                        "they protect")
    if PUBLISHED_TEST_KEYS & set(keys) or "test-only" in index_key or "ci-only" in index_key:
        problems.append("a published test-only key is in use")
    if len(set(index_key)) < 16:
        problems.append("CONSENTRY_BLIND_INDEX_KEY is not random (too few distinct "
                        "characters)")
    if index_key == settings.SECRET_KEY or settings.SECRET_KEY in keys:
        problems.append("a key is the same as SECRET_KEY")
    if len(set(keys)) != len(keys):
        problems.append("CONSENTRY_IDENTIFIER_KEYS lists a key twice")
    if not problems:
        return []
    return [checks.Warning(
        "The keys that encrypt and index patients' identifiers are weak: "
        + "; ".join(problems) + ".",
        hint="Set CONSENTRY_IDENTIFIER_KEYS (Fernet keys, newest first) and "
             "CONSENTRY_BLIND_INDEX_KEY (48 random bytes, url-safe) from your secret store; "
             "README, \"Identifiers at rest\".",
        id="consentry.W004")]
