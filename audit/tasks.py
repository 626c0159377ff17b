from celery import shared_task

from audit import checkpoints, ledger
from audit.verification import verification_run


@shared_task(name="audit.tasks.seal")
def seal() -> int:
    """Chain every pending event: woken (debounced) after commits, and run periodically to
    catch up on a lost wake-up. One sealer at a time: it waits for the lock."""
    return ledger.seal(wait=True)


@shared_task(name="audit.tasks.checkpoint")
def checkpoint() -> str | None:
    ledger.seal(wait=True)
    written = checkpoints.checkpoint_write()
    return written.name if written else None


@shared_task(name="audit.tasks.verify")
def verify() -> bool:
    return verification_run(trigger="schedule").ok
