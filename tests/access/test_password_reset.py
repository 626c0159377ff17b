"""Password resets go to the account's own email, through the outbox; requests and resets
are ledger events; the page answers alike whether or not an account uses the address."""

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditEvent


@pytest.fixture
def ask(inline_celery, django_capture_on_commit_callbacks):
    """Ask for a reset as a visitor; the outbox mails it after the commit, inline here."""
    def post(email: str):
        mail.outbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            return Client().post("/password-reset/", {"email": email}, REMOTE_ADDR="10.9.8.7")
    return post


def test_a_patient_resets_their_own_password_from_their_email(ask, patient):
    response = ask(patient.user.email)
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    [message] = mail.outbox
    assert message.to == [patient.user.email]
    link = next(line for line in message.body.splitlines() if "/password-reset/" in line)
    visitor = Client()
    form = visitor.get(link.replace("http://127.0.0.1:8000", ""), follow=True)
    assert form.status_code == 200 and b"Choose a new password" in form.content
    done = visitor.post(form.redirect_chain[-1][0], {
        "new_password1": "river-stone-lamp-42", "new_password2": "river-stone-lamp-42"})
    assert done.status_code == 302
    patient.user.refresh_from_db()
    assert patient.user.check_password("river-stone-lamp-42")
    requested = AuditEvent.objects.get(action="password_reset.requested")
    assert requested.actor_user_id == patient.user.pk and requested.actor_ip == "10.9.8.7"
    assert AuditEvent.objects.filter(action="password_reset.completed",
                                     actor_user_id=patient.user.pk).count() == 1
    # The link works once.
    again = Client().get(link.replace("http://127.0.0.1:8000", ""), follow=True)
    assert b"cannot be used" in again.content


def test_an_unknown_address_gets_the_same_answer_and_no_email(ask, db):
    response = ask("nobody@example.org")
    assert response.status_code == 302 and response["Location"] == "/password-reset/sent/"
    assert mail.outbox == []
    event = AuditEvent.objects.get(action="password_reset.requested")
    assert event.outcome == "failure" and "nobody@example.org" not in str(event.details)


@pytest.mark.parametrize("email", ["", "not-an-address", "a" * 300 + "@example.org"])
def test_a_broken_address_is_refused_and_sends_nothing(ask, db, email):
    response = ask(email)
    assert response.status_code == 200
    assert mail.outbox == [] and not AuditEvent.objects.exists()


def test_a_made_up_reset_link_is_refused(db):
    response = Client().get("/password-reset/MQ/not-a-token/", follow=True)
    assert b"cannot be used" in response.content


def test_the_new_password_must_not_be_the_patients_name(ask, patient):
    ask(patient.user.email)
    link = next(line for line in mail.outbox[0].body.splitlines() if "/password-reset/" in line)
    visitor = Client()
    form = visitor.get(link.replace("http://127.0.0.1:8000", ""), follow=True)
    refused = visitor.post(form.redirect_chain[-1][0], {
        "new_password1": "Alice-Liddell", "new_password2": "Alice-Liddell"})
    assert b"too close to your name" in refused.content
    patient.user.refresh_from_db()
    assert patient.user.check_password("pw-alice")
