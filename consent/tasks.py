from celery import shared_task

from consent.reminders import expiry_reminders_queue


@shared_task(name="consent.tasks.remind_expiring")
def remind_expiring() -> int:
    return expiry_reminders_queue()
