from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        # The auditor console lives in the ledger's app, below this one: it asks access who
        # may read it through a hook rather than importing upward.
        from access import grants
        from access.roles import Role, has_role
        from audit.registry import register_auditor_check

        register_auditor_check(lambda user: has_role(user, Role.AUDITOR))

        from access.passwords import PASSWORD_RESET_EMAIL, password_reset_email_send
        from outbox.registry import register

        register(PASSWORD_RESET_EMAIL, password_reset_email_send)
        grants.register()  # role grants are rows the ledger vouches for


@checks.register(checks.Tags.security, deploy=True)
def base_url_configured(app_configs, **kwargs):
    """Invitation and password-reset emails are built by workers, with no request to take
    the host from: a link to localhost would reach no patient."""
    base = settings.CONSENTRY_BASE_URL
    if settings.PRODUCTION and (not base.startswith("https://") or "127.0.0.1" in base
                                or "localhost" in base):
        return [checks.Warning(
            f"CONSENTRY_BASE_URL is {base!r}: links in invitation and password-reset emails "
            "will not reach anyone.",
            hint="Set CONSENTRY_BASE_URL to the https:// address patients and staff use.",
            id="consentry.W003")]
    return []
