"""The DICOM listener: a C-STORE SCP (pynetdicom) a PACS or modality sends studies to.

Each received instance is written under the data directory exactly as it arrived (the
encoded dataset, never re-encoded), read with the same ``read_header`` as ``ingest_dicom``
and registered through the same ``dicom_register``, so a file is registered the same way
whichever door it came in by. What cannot be registered is answered with a failure status
and its file removed; nothing a sender does makes the listener crash. Each association,
when it ends, is one ``study.received`` ledger event with the calling AE title and counts.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connections
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from audit import codes, ledger
from audit.ledger import Actor
from registry.registration import FileOutcome, Status, dicom_register, read_or_reject

SOURCE = "dicom-network"
# C-STORE statuses (PS3.4 Table B.2-1): success, and "cannot understand" for what we refuse.
SUCCESS = 0x0000
CANNOT_UNDERSTAND = 0xC000
OUT_OF_RESOURCES = 0xA700


@dataclass
class AssociationLog:
    calling_ae: str
    address: str
    counts: Counter = field(default_factory=Counter)
    studies: set[str] = field(default_factory=set)
    correlation_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class Listener:
    """The SCP's handlers and the state of its open associations."""

    def __init__(self, *, ae_title: str, allowed_aes: list[str] | None = None):
        self.ae_title = ae_title
        self.allowed_aes = [aet.strip() for aet in allowed_aes or [] if aet.strip()]
        self._open: dict[int, AssociationLog] = {}
        self._lock = threading.Lock()

    def application_entity(self) -> AE:
        ae = AE(ae_title=self.ae_title)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        if self.allowed_aes:
            # Unknown callers are rejected at association time (A-ASSOCIATE-RJ).
            ae.require_calling_aet = self.allowed_aes
        return ae

    def handlers(self) -> list:
        return [(evt.EVT_C_STORE, self.on_store), (evt.EVT_RELEASED, self.on_end),
                (evt.EVT_ABORTED, self.on_end), (evt.EVT_CONN_CLOSE, self.on_end)]

    def _log(self, assoc) -> AssociationLog:
        with self._lock:
            key = id(assoc)
            if key not in self._open:
                self._open[key] = AssociationLog(
                    calling_ae=str(assoc.requestor.ae_title).strip(),
                    address=str(assoc.requestor.address))
            return self._open[key]

    def on_store(self, event) -> Dataset | int:
        log = self._log(event.assoc)
        try:
            outcome = self.store(event.encoded_dataset(), log)
        except Exception as exc:  # a full disk, a lost database: the sender may retry
            log.counts["failed"] += 1
            return _status(OUT_OF_RESOURCES, f"{type(exc).__name__}")
        finally:
            # Handlers run in pynetdicom's threads: give back what Django opened there.
            close_old_connections()
        log.counts[outcome.status] += 1
        if outcome.study_uid and outcome.status != Status.REJECTED:
            log.studies.add(outcome.study_uid)
        if outcome.status in (Status.REGISTERED, Status.KNOWN):
            return SUCCESS
        return _status(CANNOT_UNDERSTAND, outcome.reason)

    def store(self, encoded: bytes, log: AssociationLog) -> FileOutcome:
        """Write one received instance, register it, and say what became of it."""
        digest = hashlib.sha256(encoded).hexdigest()
        folder = Path(settings.DICOM_STORE_DIR) / "received" / digest[:2]
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{digest}.dcm"
        partial = folder / f"{digest}.{uuid.uuid4().hex}.partial"
        partial.write_bytes(encoded)
        os.replace(partial, target)
        header = read_or_reject(target)
        if isinstance(header, FileOutcome):
            target.unlink(missing_ok=True)
            return header
        actor = Actor(label=f"dicom:{log.calling_ae}", role="system", ip=log.address)
        outcome = dicom_register(headers=[header], actor=actor, source=SOURCE,
                                 correlation_id=log.correlation_id)[0]
        if outcome.status == Status.CONFLICT:
            # The registered file stays what it was; this other content is not kept.
            target.unlink(missing_ok=True)
        return outcome

    def on_end(self, event) -> None:
        with self._lock:
            log = self._open.pop(id(event.assoc), None)
        if log is None:
            return  # a C-ECHO only, or already recorded when the association was released
        try:
            ledger.record(
                action="study.received", event_code=codes.IMPORT,
                actor=Actor(label=f"dicom:{log.calling_ae}", role="system", ip=log.address),
                outcome="success" if not (log.counts["rejected"] or log.counts["conflict"]
                                          or log.counts["failed"]) else "failure",
                correlation_id=log.correlation_id,
                details={"calling_ae": log.calling_ae, "called_ae": self.ae_title,
                         "received": sum(log.counts.values()),
                         **{status: log.counts[status] for status in
                            ("registered", "known", "conflict", "rejected", "failed")},
                         "studies": sorted(log.studies)[:100]})
        finally:
            connections.close_all()


def _status(code: int, comment: str) -> Dataset:
    status = Dataset()
    status.Status = code
    # Error Comment is LO: 64 characters at most.
    status.ErrorComment = comment.replace("\\", "/")[:64]
    return status


def listener_start(*, port: int, ae_title: str, allowed_aes: list[str] | None = None,
                   host: str = "0.0.0.0", block: bool = True):  # noqa: S104 - a DICOM port
    """Serve C-STORE and C-ECHO on ``host:port``. Blocks unless ``block`` is False, when it
    returns the running server (``server.shutdown()`` stops it)."""
    listener = Listener(ae_title=ae_title, allowed_aes=allowed_aes)
    return listener.application_entity().start_server(
        (host, port), block=block, evt_handlers=listener.handlers())
