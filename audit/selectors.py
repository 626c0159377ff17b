"""Reading the ledger for auditors: filtered search, newest first, keyset pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditEvent, ChainLink
from audit.registry import patient_refs_for_mrn

PAGE_SIZE = 50
# Ledger actions that disclose a patient's data to someone (HIPAA 164.528 accounting).
# The portal's "Who used my data" reads the same set.
DISCLOSURE_ACTIONS = ("export.included", "export.violation", "export.delivered",
                      "disclosure")


@dataclass(frozen=True)
class EventFilters:
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""
    action: str = ""
    outcome: str = ""
    patient_mrn: str = ""
    study_uid: str = ""
    dataset: str = ""
    purpose: str = ""


# Each filter and the lookup it becomes; patient_mrn goes through the registry's resolver.
_LOOKUPS = {"since": "occurred_at__gte", "until": "occurred_at__lt", "actor": "actor_label",
            "action": "action", "outcome": "outcome", "study_uid": "study_uid",
            "dataset": "dataset_ref", "purpose": "purpose_code"}


def events_matching(filters: EventFilters) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(**{
        lookup: getattr(filters, name) for name, lookup in _LOOKUPS.items()
        if getattr(filters, name) and not (name == "action" and filters.action.endswith(".*"))})
    if filters.action.endswith(".*"):
        # A family of actions ("consent.*"), chosen from the list.
        events = events.filter(action__startswith=filters.action[:-1])
    if filters.patient_mrn:
        events = events.filter(patient_ref__in=patient_refs_for_mrn(filters.patient_mrn))
    return events.order_by("-id")


def event_page(filters: EventFilters, *, before: int | None = None,
               size: int | None = None) -> tuple[list[AuditEvent], int | None]:
    """One page, newest first. Keyset pagination: the next page starts below the last id
    shown, so page 500 costs what page 1 does, and events arriving meanwhile never shift
    a page."""
    size = size or PAGE_SIZE
    events = events_matching(filters)
    if before is not None:
        events = events.filter(id__lt=before)
    rows = list(events[: size + 1])
    next_before = rows[size - 1].pk if len(rows) > size else None
    return rows[:size], next_before


def event_with_link(event_id: int) -> tuple[AuditEvent, ChainLink | None]:
    event = AuditEvent.objects.get(pk=event_id)
    return event, ChainLink.objects.filter(event_id=event_id).first()


def disclosures_for_mrn(mrn: str) -> QuerySet[AuditEvent]:
    """Every disclosure of the patient's data, oldest first: date, recipient, what, why."""
    return (AuditEvent.objects.filter(patient_ref__in=patient_refs_for_mrn(mrn),
                                      action__in=DISCLOSURE_ACTIONS)
            .order_by("occurred_at", "id"))


def events_between(since, until) -> QuerySet[AuditEvent]:
    """For exports: a time range, in chain order, streamed by the caller."""
    return AuditEvent.objects.filter(occurred_at__gte=since, occurred_at__lt=until
                                     ).order_by("id")
