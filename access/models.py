"""API tokens: credentials for other systems, with the scopes they may use."""

from django.conf import settings
from django.db import models


class TokenScope(models.TextChoices):
    CONSENT_READ = "consent:read", "Read consent and ask for consent checks"
    CONSENT_WRITE = "consent:write", "Record and withdraw consent"
    INGEST = "ingest", "Register DICOM files"
    EXPORT = "export", "Run exports"
    LEDGER_READ = "ledger:read", "Read the ledger"


class ApiToken(models.Model):
    """A credential for another system. The secret is shown once and stored as sha256; the
    prefix names the token in the ledger and in lists."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    created_by_label = models.CharField(max_length=150)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"
