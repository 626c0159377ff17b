"""Thin Celery wrappers around registry services."""

import logging

from celery import shared_task
from django.conf import settings

from audit.ledger import Actor
from registry.dicomweb import SourceUnavailable, dicomweb_poll

logger = logging.getLogger(__name__)


@shared_task
def poll_dicomweb() -> None:
    """The periodic poll of every DICOMweb source; one that is down waits for the next."""
    for name in sorted(settings.CONSENTRY_DICOMWEB_SOURCES):
        try:
            dicomweb_poll(source=name, actor=Actor.system("dicomweb poll"))
        except SourceUnavailable as exc:
            logger.warning("DICOMweb poll: %s", exc)
