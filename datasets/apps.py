from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class DatasetsConfig(AppConfig):
    name = "datasets"
    verbose_name = "Datasets and exports"

    def ready(self) -> None:
        from consent.services import CONSENT_CHANGED
        from datasets.delivery import DELIVERY_REQUESTED, delivery_give_up, delivery_run
        from datasets.exports import EXPORT_REQUESTED, export_give_up, export_job_handler
        from datasets.shards import EXPORT_HELP
        from datasets.withdrawals import (
            NOTICE_EMAIL,
            consent_changed_handler,
            notice_email_send,
        )
        from outbox.registry import register

        register(EXPORT_REQUESTED, export_job_handler, on_give_up=export_give_up)
        # More workers on the same version: the same job, which claims what is left.
        register(EXPORT_HELP, export_job_handler, on_give_up=export_give_up)
        register(CONSENT_CHANGED, consent_changed_handler)
        register(NOTICE_EMAIL, notice_email_send)
        register(DELIVERY_REQUESTED, delivery_run, on_give_up=delivery_give_up)
        from audit.registry import register_datasets
        from datasets import vouched

        vouched.register()  # datasets are rows the ledger vouches for
        # The auditor picks a dataset by name; audit cannot import datasets (layers).
        register_datasets(labeler=_dataset_labels)


def _dataset_labels(refs: list[str]) -> dict[str, str]:
    from datasets.models import Dataset

    ids = [int(r) for r in refs if r.isdigit()]
    return {str(pk): name for pk, name in
            Dataset.objects.filter(pk__in=ids).values_list("pk", "name")}


@checks.register(checks.Tags.security, deploy=True)
def export_key_configured(app_configs, **kwargs):
    """Recipients pin the hospital's export key: in production it must be a key the
    hospital keeps and publishes, not one made up in the data directory."""
    if settings.PRODUCTION and not settings.CONSENTRY_EXPORT_SIGNING_KEY:
        return [checks.Warning(
            "CONSENTRY_EXPORT_SIGNING_KEY is not set: export manifests are signed with a key "
            "generated in the data directory, which recipients cannot have pinned.",
            hint="Set CONSENTRY_EXPORT_SIGNING_KEY to an Ed25519 private key (PEM) from your "
                 "secret store and publish its public half (/exports/public-key/).",
            id="consentry.W002")]
    return []


@checks.register()
def destinations_well_formed(app_configs, **kwargs):
    """A destination that cannot be parsed would fail only when a version is delivered."""
    from django.core.exceptions import ValidationError

    from datasets.delivery import destination_parse

    errors = []
    for name in sorted(settings.CONSENTRY_DESTINATIONS):
        try:
            destination_parse(name)
        except ValidationError as exc:
            errors.append(checks.Error(
                f"CONSENTRY_DESTINATIONS: {'; '.join(exc.messages)}",
                hint="Use name=dicom://AE@host:port or name=stow+https://host/dicom-web.",
                id="consentry.E001"))
    return errors
