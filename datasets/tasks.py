from celery import shared_task

from datasets.shards import export_shards_sweep as shards_sweep
from datasets.withdrawals import lapsed_consent_notices_create


@shared_task(name="datasets.tasks.notice_lapsed_consent")
def notice_lapsed_consent() -> int:
    """Daily (beat): notices for delivered studies whose consent expired since."""
    return len(lapsed_consent_notices_create())


@shared_task(name="datasets.tasks.export_shards_sweep")
def export_shards_sweep() -> int:
    """Every minute (beat): wake a worker for exports whose shard a dead worker held."""
    return shards_sweep()
