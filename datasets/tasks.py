from celery import shared_task

from datasets.withdrawals import lapsed_consent_notices_create


@shared_task(name="datasets.tasks.notice_lapsed_consent")
def notice_lapsed_consent() -> int:
    """Daily (beat): notices for delivered studies whose consent expired since."""
    return len(lapsed_consent_notices_create())
