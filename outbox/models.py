from django.db import models


class MessageStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class OutboxMessage(models.Model):
    """Work promised by a committed transaction: written with it, delivered after it."""

    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=MessageStatus.choices,
                              default=MessageStatus.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    # A worker that claims a message owns it until then; after, the sweeper may re-send it
    # (the worker died, or the broker lost the task).
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The sweeper's query: pending messages whose lease is over.
            models.Index(fields=["lease_until"], name="outbox_pending_lease",
                         condition=models.Q(status="pending")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "delivered", "failed"]),
                name="outbox_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"
