from django.apps import AppConfig


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
