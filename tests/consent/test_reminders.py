"""Daily reminders for choices about to expire: queued through the outbox, sent once."""

import pytest
from django.core import mail

from consent.models import ExpiryReminder
from consent.reminders import expiry_reminders_queue
from outbox.models import OutboxMessage
from tests.consent.factories import make_patient, make_record, today

pytestmark = pytest.mark.usefixtures("inline_celery")


def record_expiring(patient, purpose_code, in_days):
    """A permit made yesterday that expires in ``in_days``."""
    return make_record(patient, purpose_code, "permit", recorded=today() - 1,
                       expires=today() + in_days)


def test_a_choice_expiring_within_30_days_is_reminded_once_by_email(
        patient, django_capture_on_commit_callbacks):
    record_expiring(patient, "ai-training", 10)
    record_expiring(patient, "research", 90)  # not yet
    with django_capture_on_commit_callbacks(execute=True):
        assert expiry_reminders_queue() == 1
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [patient.user.email]
    assert "training AI tools" in message.body
    assert "research" not in message.body.lower().split("expire soon:")[1]
    assert OutboxMessage.objects.get().status == "delivered"
    with django_capture_on_commit_callbacks(execute=True):
        assert expiry_reminders_queue() == 0
    assert len(mail.outbox) == 1


def test_a_superseded_choice_is_not_reminded(patient, django_capture_on_commit_callbacks):
    record_expiring(patient, "ai-training", 10)
    make_record(patient, "ai-training", "deny", recorded=today())  # changed their mind
    with django_capture_on_commit_callbacks(execute=True):
        assert expiry_reminders_queue() == 0
    assert mail.outbox == []
    assert ExpiryReminder.objects.count() == 0


def test_patients_without_a_portal_account_are_not_emailed(db):
    someone = make_patient()
    record_expiring(someone, "ai-training", 5)
    assert expiry_reminders_queue() == 0
