from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit ledger"


@checks.register(checks.Tags.security, deploy=True)
def signing_key_configured(app_configs, **kwargs):
    """In production the checkpoint key should live outside the data directory, where a
    database owner with file access cannot simply re-sign a rewritten ledger."""
    if settings.PRODUCTION and not settings.CONSENTRY_LEDGER_SIGNING_KEY:
        return [checks.Warning(
            "CONSENTRY_LEDGER_SIGNING_KEY is not set: ledger checkpoints are signed with a "
            "key generated in the data directory.",
            hint="Set CONSENTRY_LEDGER_SIGNING_KEY to an Ed25519 private key (PEM) kept in "
                 "your secret store, and CONSENTRY_CHECKPOINT_DIR to write-once storage.",
            id="consentry.W001")]
    return []
