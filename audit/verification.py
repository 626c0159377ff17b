"""Running the verification and keeping its result for the auditors' dashboard: the chain
first (audit/ledger.py), then the rows the ledger vouches for (audit/vouching.py)."""

from django.utils import timezone

from audit import ledger
from audit.models import VerificationRun
from audit.vouching import verify_rows


def verification_run(*, trigger: str) -> VerificationRun:
    started = timezone.now()
    ledger.seal(wait=True)
    result = ledger.verify()
    # Rows are judged against their events only once the events are known to be intact.
    problems = result.problems or verify_rows()
    return VerificationRun.objects.create(
        started_at=started, finished_at=timezone.now(), trigger=trigger, ok=not problems,
        checked=result.checked, pending=result.pending, checkpoints=result.checkpoints,
        first_bad_event_id=result.first_bad_event_id,
        first_bad_position=result.first_bad_position,
        # Every row problem, one a line: an auditor needs all of them, not the first.
        problem="\n".join(problems))
