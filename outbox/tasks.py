from celery import shared_task

from outbox.services import outbox_deliver, outbox_sweep


@shared_task(name="outbox.tasks.deliver", acks_late=True, reject_on_worker_lost=True)
def deliver(message_id: int) -> bool:
    return outbox_deliver(message_id=message_id)


@shared_task(name="outbox.tasks.sweep")
def sweep() -> int:
    return outbox_sweep()
