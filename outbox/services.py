"""Publish work in the caller's transaction; deliver it at least once after commit."""

import logging
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from outbox.models import MessageStatus, OutboxMessage
from outbox.registry import give_up_for, handler_for

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A wake-up is only a shortcut (the sweeper re-sends anything pending), so it may not hold
# a user's request for long when the broker is away: a few quick tries, then give up.
WAKE_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2,
              "interval_max": 0.2}


def lease() -> timedelta:
    """How long a claim lasts (settings.OUTBOX_LEASE_SECONDS)."""
    return timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)


def outbox_publish(*, kind: str, payload: dict[str, Any]) -> OutboxMessage:
    """Write the message with the caller's changes; wake a worker once they commit."""
    handler_for(kind)  # fail now, inside the transaction, rather than never deliver
    message = OutboxMessage.objects.create(kind=kind, payload=payload)
    transaction.on_commit(partial(wake, message_id=message.pk, kind=kind))
    return message


def wake(*, message_id: int, kind: str) -> bool:
    """Ask a worker to deliver the message now. Runs after the commit, so the caller's
    changes are saved whatever happens here: a broker that cannot be reached is logged and
    left to the sweeper (it re-sends every pending message), never turned into an error
    for a user whose change is already saved. Returns whether the broker took it."""
    from outbox.tasks import deliver

    try:
        deliver.apply_async((message_id,), retry_policy=WAKE_RETRY)
    except Exception:
        # Broad on purpose: whatever broke (broker, network, an eager task in the embedded
        # mode), the message is committed and pending, and the sweeper will re-send it.
        logger.warning("outbox message %s (%s) is saved but could not be handed to a "
                       "worker now; the sweeper will deliver it", message_id, kind,
                       exc_info=True)
        return False
    return True


def _claim(message_id: int) -> OutboxMessage | None:
    """Take the message for the lease; None if delivered, failed or someone else holds it."""
    now = timezone.now()
    with transaction.atomic():
        message = (OutboxMessage.objects.select_for_update(skip_locked=True)
                   .filter(pk=message_id, status=MessageStatus.PENDING).first())
        if message is None or (message.lease_until and message.lease_until > now):
            return None
        message.lease_until = now + lease()
        message.attempts += 1
        message.save(update_fields=["lease_until", "attempts"])
        return message


def outbox_deliver(*, message_id: int) -> bool:
    """Run the message's handler. Handlers are idempotent: delivery is at least once."""
    message = _claim(message_id)
    if message is None:
        return False
    try:
        handler_for(message.kind)(message.payload)
    except Exception as exc:
        logger.exception("outbox message %s (%s) failed", message.pk, message.kind)
        error = f"{type(exc).__name__}: {exc}"
        failed = message.attempts >= MAX_ATTEMPTS
        OutboxMessage.objects.filter(pk=message.pk).update(
            status=MessageStatus.FAILED if failed else MessageStatus.PENDING,
            # Retry after a short back-off rather than a whole lease.
            lease_until=timezone.now() + timedelta(seconds=30 * message.attempts),
            last_error=error[:2000],
        )
        give_up = give_up_for(message.kind)
        if failed and give_up is not None:
            give_up(message.payload, error)
        return False
    OutboxMessage.objects.filter(pk=message.pk).update(
        status=MessageStatus.DELIVERED, delivered_at=timezone.now(), last_error="")
    return True


def outbox_due(*, limit: int = 100) -> list[int]:
    """Pending messages no worker holds, oldest first: what a worker polling the database
    (the embedded mode, no broker) should deliver next."""
    now = timezone.now()
    lease_over = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    return list(OutboxMessage.objects.filter(lease_over, status=MessageStatus.PENDING)
                .order_by("pk").values_list("pk", flat=True)[:limit])


def outbox_sweep(*, older_than: timedelta = timedelta(seconds=30)) -> int:
    """Re-send pending messages whose wake-up was lost or whose worker died."""
    from outbox.tasks import deliver

    now = timezone.now()
    lease_over = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    ids = list(
        OutboxMessage.objects.filter(lease_over, status=MessageStatus.PENDING,
                                     created_at__lte=now - older_than)
        .values_list("pk", flat=True)[:1000]
    )
    for message_id in ids:
        deliver.delay(message_id)
    return len(ids)
