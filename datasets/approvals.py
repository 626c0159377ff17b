"""Four eyes for log-only datasets: studies go out without consent only on a legal basis
that a privacy officer, not the requester, has approved. Request, approval and refusal are
ledger events."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from access.roles import Role, has_role
from audit import ledger
from audit.ledger import Actor
from audit.vouching import vouch, vouched_details
from datasets.models import ApprovalDecision, Dataset, Enforcement, LegalBasisApproval
from datasets.vouched import APPROVAL


class ApprovalState:
    NOT_NEEDED = "not needed"
    AWAITING = "awaiting approval"
    APPROVED = ApprovalDecision.APPROVED.value
    REFUSED = ApprovalDecision.REFUSED.value


def approval_state(dataset: Dataset) -> str:
    if dataset.enforcement != Enforcement.LOG_ONLY:
        return ApprovalState.NOT_NEEDED
    decision = LegalBasisApproval.objects.filter(dataset=dataset).values_list(
        "decision", flat=True).first()
    return decision or ApprovalState.AWAITING


def ensure_may_run(dataset: Dataset) -> None:
    """Refuses an export of a log-only dataset whose legal basis is not approved."""
    state = approval_state(dataset)
    if state == ApprovalState.AWAITING:
        raise ValidationError({"enforcement": "this log-only dataset waits for a privacy "
                                              "officer to approve its legal basis"})
    if state == ApprovalState.REFUSED:
        raise ValidationError({"enforcement": "a privacy officer refused this dataset's "
                                              "legal basis; it cannot run"})


def approval_requested(*, dataset: Dataset, actor: Actor) -> None:
    """The ledger's note that a log-only dataset needs a second person (written by
    dataset_create in its transaction)."""
    ledger.record(action="dataset.approval_requested", actor=actor, dataset_ref=dataset.pk,
                  purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
                  details={"name": dataset.name, "recipient": dataset.recipient})


@transaction.atomic
def legal_basis_decide(*, dataset: Dataset, user: Any, decision: str, actor: Actor,
                       note: str = "") -> LegalBasisApproval:
    """Approve or refuse, once. Only a privacy officer who did not ask for the dataset."""
    dataset = Dataset.objects.select_for_update().select_related("purpose").get(pk=dataset.pk)
    if decision not in ApprovalDecision.values:
        raise ValidationError({"decision": "approve or refuse"})
    if not has_role(user, Role.PRIVACY_OFFICER):
        raise ValidationError({"decision": "only a privacy officer decides on a legal basis"})
    if dataset.enforcement != Enforcement.LOG_ONLY:
        raise ValidationError({"decision": "only log-only datasets need an approval"})
    if dataset.owner_id == user.pk:
        raise ValidationError({"decision": "you asked for this dataset: a second person must "
                                           "decide on its legal basis"})
    if LegalBasisApproval.objects.filter(dataset=dataset).exists():
        raise ValidationError({"decision": "this dataset's legal basis was decided already"})
    note = note.strip()
    if decision == ApprovalDecision.REFUSED and not note:
        raise ValidationError({"note": "say why, so the requester can act on it"})
    approval = LegalBasisApproval.objects.create(
        dataset=dataset, decision=decision, decided_by=user,
        decided_by_label=user.get_username(), legal_basis=dataset.legal_basis, note=note,
        decided_at=timezone.now())
    ledger.record(action=f"dataset.{decision}", actor=actor, dataset_ref=dataset.pk,
                  purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
                  reason=note, details=vouched_details(
                      {"requested_by": dataset.owner.get_username()},
                      vouch(table=APPROVAL, row=approval)))
    return approval
