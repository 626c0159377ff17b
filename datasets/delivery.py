"""Delivery of a version to a destination: a DICOM node (C-STORE) or a DICOMweb endpoint
(STOW-RS), study by study, from the version's own de-identified files.

Only what the export wrote is sent: the included studies, de-identified, read from the
published version directory. When the export completes it queues the delivery in the same
transaction (``delivery_queue``), one row per included study; the outbox then runs
``delivery_run``, which re-checks consent (a withdrawal since the export withholds the
study), sends each study not yet sent and records each sending with its ledger event. A
failure is kept on the study's row (shown on the version page) and raised, so the outbox
retries; studies already sent are not sent again. When the outbox gives up, the rows say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
import requests
from dicomweb_client import DICOMwebClient
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from pynetdicom import AE

from audit import codes, ledger
from audit.ledger import Actor
from audit.vouching import unvouch, vouch, vouched_details
from consent.engine import decide
from datasets.models import (
    Dataset,
    DatasetDestination,
    DatasetVersion,
    Delivery,
    DeliveryStatus,
    Enforcement,
    VersionStudy,
)
from datasets.vouched import DESTINATION
from outbox.services import outbox_publish

DELIVERY_REQUESTED = "datasets.delivery_requested"
DICOM_NODE = re.compile(r"^dicom://(?P<aet>[^@\\]{1,16})@(?P<host>[^:/]+):(?P<port>\d{1,5})$")


class DeliveryFailed(Exception):
    """Some studies could not be sent this time; the outbox will retry."""


@dataclass(frozen=True)
class Destination:
    name: str
    kind: str  # "dicom" or "stow"
    address: str  # host:port AE, or the STOW-RS base URL
    aet: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        return self.name


def destination_parse(name: str) -> Destination:
    """A configured destination by name; ValidationError when unknown or malformed."""
    spec = settings.CONSENTRY_DESTINATIONS.get(name)
    if not spec:
        raise ValidationError({"destination": f"no destination {name!r} in "
                                              "CONSENTRY_DESTINATIONS"})
    node = DICOM_NODE.match(spec)
    if node and 0 < int(node["port"]) < 65536:
        return Destination(name=name, kind="dicom", address=spec, aet=node["aet"],
                           host=node["host"], port=int(node["port"]))
    if spec.startswith(("stow+http://", "stow+https://")):
        return Destination(name=name, kind="stow", address=spec.removeprefix("stow+"))
    raise ValidationError({"destination": f"{name!r} is neither dicom://AE@host:port nor "
                                          "stow+http(s)://…"})


def destination_names() -> list[str]:
    """The destinations a steward may choose from (CONSENTRY_DESTINATIONS), by name."""
    return sorted(settings.CONSENTRY_DESTINATIONS)


@transaction.atomic
def dataset_destination_set(*, dataset: Dataset, name: str,
                            actor: Actor) -> DatasetDestination | None:
    """Send this dataset's next versions to ``name`` ('' stops sending). Returns the row,
    None when there is none. Each change is one event vouching for the row
    (datasets/vouched.py); setting what is already set changes and records nothing."""
    if name:
        destination_parse(name)
    # Two stewards changing the same dataset's destination take turns: each reads the
    # row the other wrote, and each event follows the write it vouches for.
    list(Dataset.objects.select_for_update().filter(pk=dataset.pk).values_list("pk"))
    current = DatasetDestination.objects.filter(dataset=dataset).first()
    previous = current.name if current else ""
    if previous == name:
        return current
    if not name:
        vouched = unvouch(table=DESTINATION, row_id=current.pk)
        current.delete()
        current = None
    else:
        if current is None:
            current = DatasetDestination(dataset=dataset)
        current.name, current.set_by, current.set_at = name, actor.label, timezone.now()
        current.save()
        vouched = vouch(table=DESTINATION, row=current)
    ledger.record(action="dataset.destination_set", event_code=codes.APPLICATION_ACTIVITY,
                  actor=actor, dataset_ref=dataset.pk, purpose_code=dataset.purpose.code,
                  details=vouched_details({"destination": name or None,
                                           "previous": previous or None,
                                           "recipient": dataset.recipient}, vouched))
    return current


def delivery_queue(*, version: DatasetVersion) -> int:
    """Called by the export, in the transaction that completes the version: one pending
    delivery per included study, and the outbox message that sends them. Returns how many."""
    destination = DatasetDestination.objects.filter(dataset_id=version.dataset_id).first()
    if destination is None:
        return 0
    included = VersionStudy.objects.filter(version=version, included=True).order_by("pk")
    Delivery.objects.bulk_create(
        [Delivery(version_study=fate, destination=destination.name) for fate in included],
        ignore_conflicts=True)
    outbox_publish(kind=DELIVERY_REQUESTED, payload={"version_id": version.pk})
    return included.count()


def study_files(version: DatasetVersion, fate: VersionStudy) -> list[Path]:
    from datasets.exports import version_dir

    return sorted((version_dir(version) / fate.pseudo_study_uid).rglob("*.dcm"))


def delivery_run(payload: dict) -> None:
    """Outbox handler: send every study of the version not sent yet."""
    version = DatasetVersion.objects.select_related("dataset__purpose").get(
        pk=payload["version_id"])
    dataset = version.dataset
    actor = Actor.system(f"delivery of dataset {dataset.pk} v{version.number}")
    failures = []
    pending = (Delivery.objects.filter(version_study__version=version)
               .exclude(status__in=[DeliveryStatus.SENT, DeliveryStatus.WITHHELD])
               .select_related("version_study__study__patient").order_by("pk"))
    for delivery in pending:
        fate = delivery.version_study
        study = fate.study
        # A withdrawal since the export was written wins over sending it now.
        latest = decide(study, dataset.purpose, timezone.now())
        if not latest.allowed and dataset.enforcement != Enforcement.LOG_ONLY:
            _record(delivery, actor, version, status=DeliveryStatus.WITHHELD,
                    reason=f"consent withdrawn before delivery: {latest.reason}")
            continue
        try:
            destination = destination_parse(delivery.destination)
            sent = _send(destination, study_files(version, fate))
        except (ValidationError, OSError, DeliveryFailed, ValueError) as exc:
            message = "; ".join(exc.messages) if isinstance(exc, ValidationError) \
                else f"{type(exc).__name__}: {exc}"
            Delivery.objects.filter(pk=delivery.pk).update(
                status=DeliveryStatus.FAILED, attempts=F("attempts") + 1,
                error=message[:2000])
            failures.append(message)
            continue
        _record(delivery, actor, version, status=DeliveryStatus.SENT, sent=sent)
    if failures:
        raise DeliveryFailed(f"{len(failures)} studies not delivered: {failures[0]}"[:1000])


def _record(delivery: Delivery, actor: Actor, version: DatasetVersion, *, status: str,
            sent: int = 0, reason: str = "") -> None:
    fate = delivery.version_study
    dataset = version.dataset
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, attempts=F("attempts") + 1, instances_sent=sent, error=reason,
            sent_at=timezone.now() if status == DeliveryStatus.SENT else None)
        ledger.record(
            action="export.sent" if status == DeliveryStatus.SENT else "export.withheld",
            event_code=codes.EXPORT, actor=actor, patient_ref=fate.study.patient_id,
            study_uid=fate.study.study_uid, dataset_ref=dataset.pk,
            purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
            outcome="success" if status == DeliveryStatus.SENT else "denied", reason=reason,
            details={"version": version.number, "destination": delivery.destination,
                     "recipient": dataset.recipient,
                     "pseudonymous_study_uid": fate.pseudo_study_uid, "instances": sent})


def _send(destination: Destination, files: list[Path]) -> int:
    if not files:
        raise DeliveryFailed("the version holds no file for this study")
    datasets = [pydicom.dcmread(f) for f in files]
    if destination.kind == "stow":
        try:
            DICOMwebClient(url=destination.address).store_instances(datasets)
        except requests.RequestException as exc:
            raise DeliveryFailed(f"STOW-RS to {destination}: {exc}"[:500]) from None
        return len(datasets)
    ae = AE(ae_title=settings.CONSENTRY_DICOM_AE_TITLE)
    for context in {(ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.TransferSyntaxUID)
                    for ds in datasets}:
        ae.add_requested_context(*context)
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.aet)
    if not assoc.is_established:
        raise DeliveryFailed(f"{destination} ({destination.host}:{destination.port}) refused "
                             "or did not answer the association")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):
                raise DeliveryFailed(f"C-STORE to {destination} answered "
                                     f"{'no status' if code is None else hex(code)}")
    finally:
        assoc.release()
    return len(datasets)


def delivery_give_up(payload: dict, error: str) -> None:
    """The outbox stopped retrying: the studies still unsent say so, with a ledger event."""
    version = DatasetVersion.objects.select_related("dataset__purpose").get(
        pk=payload["version_id"])
    with transaction.atomic():
        stuck = Delivery.objects.filter(version_study__version=version,
                                        status__in=[DeliveryStatus.PENDING,
                                                    DeliveryStatus.FAILED])
        count = stuck.update(status=DeliveryStatus.GAVE_UP)
        ledger.record(action="export.delivery_failed", event_code=codes.EXPORT,
                      outcome="failure", reason=error[:500],
                      actor=Actor.system(f"delivery of dataset {version.dataset_id} "
                                         f"v{version.number}"),
                      dataset_ref=version.dataset_id,
                      purpose_code=version.dataset.purpose.code,
                      details={"version": version.number, "studies": count})
