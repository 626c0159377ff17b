"""Reads shared by the steward's pages, the API and the manifest."""

from django.db.models import Count, QuerySet

from datasets.delivery import DELIVERY_REQUESTED
from datasets.models import (
    DatasetDestination,
    DatasetVersion,
    Delivery,
    VersionStatus,
    VersionStudy,
)
from outbox.models import OutboxMessage


def version_progress(version: DatasetVersion) -> dict:
    """What the page and the API show while a version runs."""
    total = version.studies_total
    return {"status": version.status, "studies_done": version.studies_done,
            "studies_total": total, "files_written": version.files_written,
            "bytes_written": version.bytes_written,
            "percent": round(100 * version.studies_done / total) if total else 0,
            "error": version.error,
            "finished": version.status in (VersionStatus.COMPLETE, VersionStatus.FAILED)}


def excluded_by_reason(version: DatasetVersion) -> dict[str, int]:
    """Studies left out, counted by reason, most common first."""
    counts = (VersionStudy.objects.filter(version=version, included=False)
              .values("reason").annotate(n=Count("pk")).order_by("-n", "reason"))
    return {row["reason"]: row["n"] for row in counts}


def version_deliveries(version: DatasetVersion) -> QuerySet[Delivery]:
    """What was sent to the dataset's destination, study by study (the version page)."""
    return (Delivery.objects.filter(version_study__version=version)
            .select_related("version_study__study").order_by("pk"))


def dataset_destination(dataset_id: int) -> DatasetDestination | None:
    return DatasetDestination.objects.filter(dataset_id=dataset_id).first()


def delivery_retry(version: DatasetVersion) -> OutboxMessage | None:
    """The outbox message that sends the version: its attempts, when it is tried again
    (``lease_until`` while pending) and its last error."""
    return (OutboxMessage.objects.filter(kind=DELIVERY_REQUESTED,
                                         payload__version_id=version.pk)
            .order_by("-pk").first())
