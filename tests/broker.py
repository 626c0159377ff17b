"""The real Redis broker the tests send Celery messages to.

WORKER_REDIS_URL, else REDIS_URL; .ci/run sets WORKER_REDIS_URL for its SQLite run (where the
app itself runs without Redis), and `make mutation` sets it when Redis answers. Empty only
outside CI with neither set; with CI=true the tests fall back to the local Redis."""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from config.celery import app

REDIS_URL = os.environ.get("WORKER_REDIS_URL") or os.environ.get("REDIS_URL") or (
    "redis://127.0.0.1:6379/15" if os.environ.get("CI") else "")


def forget_broker_connections() -> None:
    """Celery caches the broker connection pool and the queue routing it built from the
    configuration it first saw; drop both so the new broker and queue take effect."""
    app._pool = None
    app.__dict__.pop("amqp", None)


@contextmanager
def sending_to(broker_url: str = REDIS_URL, queue: str = "") -> Iterator[str]:
    """Tasks sent from this process go to a queue of their own on `broker_url`, not run
    inline; the queue's name is yielded."""
    queue = queue or f"consentry-test-{uuid.uuid4().hex[:10]}"
    saved = {k: app.conf[k] for k in ("broker_url", "task_always_eager", "task_default_queue")}
    app.conf.update(broker_url=broker_url, task_always_eager=False, task_default_queue=queue)
    forget_broker_connections()
    try:
        yield queue
    finally:
        app.conf.update(saved)
        forget_broker_connections()
