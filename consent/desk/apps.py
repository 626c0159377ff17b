from django.apps import AppConfig


class DeskConfig(AppConfig):
    """The staff desk: an app of its own only so its templates sit beside its views."""

    name = "consent.desk"
    label = "consent_desk"
    verbose_name = "Staff desk"
