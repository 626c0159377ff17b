"""Running the verification and keeping its result for the auditors' dashboard."""

from django.utils import timezone

from audit import ledger
from audit.models import VerificationRun


def verification_run(*, trigger: str) -> VerificationRun:
    started = timezone.now()
    ledger.seal(wait=True)
    result = ledger.verify()
    return VerificationRun.objects.create(
        started_at=started, finished_at=timezone.now(), trigger=trigger, ok=result.ok,
        checked=result.checked, pending=result.pending, checkpoints=result.checkpoints,
        first_bad_event_id=result.first_bad_event_id,
        first_bad_position=result.first_bad_position,
        problem=result.problems[0] if result.problems else "")
