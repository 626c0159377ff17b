from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The patient portal: an app of its own only so its templates sit beside its views."""

    name = "consent.portal"
    label = "consent_portal"
    verbose_name = "Patient portal"
