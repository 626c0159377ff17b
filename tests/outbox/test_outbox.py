"""The outbox: work written with the transaction that promises it, delivered after."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from outbox import registry
from outbox.models import MessageStatus, OutboxMessage
from outbox.services import MAX_ATTEMPTS, outbox_deliver, outbox_publish

received: list[dict] = []


def remember(payload: dict) -> None:
    received.append(payload)


def explode(payload: dict) -> None:
    raise ValueError("the handler broke")


@pytest.fixture(autouse=True)
def handlers():
    received.clear()
    registry.register("test.remember", remember)
    registry.register("test.explode", explode)
    yield
    registry._handlers.pop("test.remember")
    registry._handlers.pop("test.explode")


def test_a_committed_message_is_delivered_once_after_commit(db, inline_celery,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        message = outbox_publish(kind="test.remember", payload={"n": 1})
        assert received == []  # nothing runs before the commit
    assert received == [{"n": 1}]
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    assert outbox_deliver(message_id=message.pk) is False  # a second wake-up does nothing
    assert received == [{"n": 1}]


def test_a_rolled_back_transaction_leaves_no_message(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks, \
            pytest.raises(RuntimeError), transaction.atomic():
        outbox_publish(kind="test.remember", payload={"n": 2})
        raise RuntimeError("rolled back")
    assert callbacks == []
    assert OutboxMessage.objects.count() == 0
    assert received == []


def test_an_unknown_kind_fails_inside_the_transaction(db):
    with pytest.raises(LookupError, match="no outbox handler"):
        outbox_publish(kind="test.nobody", payload={})
    assert OutboxMessage.objects.count() == 0


def test_a_failing_handler_is_retried_then_marked_failed(db):
    message = OutboxMessage.objects.create(kind="test.explode", payload={})
    for attempt in range(1, MAX_ATTEMPTS + 1):
        OutboxMessage.objects.filter(pk=message.pk).update(lease_until=None)
        assert outbox_deliver(message_id=message.pk) is False
        message.refresh_from_db()
        assert message.attempts == attempt
        assert "ValueError: the handler broke" in message.last_error
    assert message.status == MessageStatus.FAILED


def test_a_message_under_lease_is_not_delivered_twice(db):
    message = OutboxMessage.objects.create(
        kind="test.remember", payload={}, lease_until=timezone.now() + timedelta(minutes=5))
    assert outbox_deliver(message_id=message.pk) is False
    assert received == []
