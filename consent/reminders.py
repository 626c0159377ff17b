"""Reminding patients of choices that expire soon (a daily Celery beat job)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from consent.models import ConsentRecord, ExpiryReminder
from consent.selectors import live_records
from consent.wording import mid_sentence
from outbox.services import outbox_publish
from registry.models import Patient

REMIND_BEFORE = timedelta(days=30)
EXPIRY_REMINDER = "consent.expiry_reminder"


def expiry_reminders_queue(*, now: datetime | None = None) -> int:
    """Queue one email per patient whose choices in force expire within 30 days and who was
    not reminded of them yet. Returns how many patients were queued."""
    now = now or timezone.now()
    soon = now + REMIND_BEFORE
    patient_ids = (ConsentRecord.objects
                   .filter(expires_at__gt=now, expires_at__lte=soon, patient__user__isnull=False)
                   .exclude(pk__in=ExpiryReminder.objects.values("record_id"))
                   .values_list("patient_id", flat=True).distinct())
    queued = 0
    for patient in Patient.objects.filter(pk__in=list(patient_ids)):
        with transaction.atomic():
            reminded = set(ExpiryReminder.objects.filter(record__patient=patient)
                           .values_list("record_id", flat=True))
            due = [r for r in live_records(patient, now).values()
                   if r.expires_at and r.expires_at <= soon and r.pk not in reminded]
            if not due:
                continue
            ExpiryReminder.objects.bulk_create(
                [ExpiryReminder(record=r, queued_at=now) for r in due])
            outbox_publish(kind=EXPIRY_REMINDER, payload={
                "patient_id": patient.pk, "record_ids": sorted(r.pk for r in due)})
            queued += 1
    return queued


def expiry_reminder_send(payload: dict[str, Any]) -> None:
    """Outbox handler: the email itself, sent after the reminder committed."""
    patient = Patient.objects.select_related("user").get(pk=payload["patient_id"])
    if not patient.user or not patient.user.email:
        return
    records = (ConsentRecord.objects.filter(pk__in=payload["record_ids"])
               .select_related("purpose").order_by("expires_at"))
    lines = [f"- {'yes' if r.decision == 'permit' else 'no'} to "
             f"{mid_sentence(r.purpose.name)}, until {r.expires_at:%d %B %Y}" for r in records]
    send_mail(
        subject="Your choices about your scans expire soon",
        message=("Some of the choices you made about how your scans may be used expire "
                 "soon:\n\n" + "\n".join(lines) + "\n\nWhen a choice expires, the hospital's "
                 "default applies again. Sign in to the patient portal to renew or change "
                 "them.\n"),
        from_email=None, recipient_list=[patient.user.email])
