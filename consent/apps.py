from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent registry"

    def ready(self) -> None:
        from consent import vouched
        from consent.invitations import INVITE_EMAIL, invite_email_send
        from consent.reminders import EXPIRY_REMINDER, expiry_reminder_send
        from outbox.registry import register

        register(EXPIRY_REMINDER, expiry_reminder_send)
        register(INVITE_EMAIL, invite_email_send)
        vouched.register()  # the tables the ledger vouches for (audit/vouching.py)
