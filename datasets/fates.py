"""Each study's fate in a version (included or not, and why) with its ledger event, written
in batches: a handful of statements for many studies instead of a transaction each."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from audit import codes, ledger
from audit.ledger import Actor
from consent.engine import ConsentDecision
from datasets.models import DatasetVersion, ExportShard, Pseudonym, VersionStudy
from datasets.shards import progress_add, shard_finish, shard_renew
from registry.models import ImagingStudy

BATCH_STUDIES = 10
# A batch of slow studies (OCR) is cut short: written sooner, and renewing the lease.
BATCH_SECONDS = 5.0


@dataclass
class Fate:
    study: ImagingStudy
    decision: ConsentDecision
    included: bool
    reason: str
    violation: bool = False
    pseudo_uid: str = ""
    files: int = 0
    size: int = 0
    pixels: str = ""
    pseudonym: str = ""  # set when included: the patient's pseudonym in this dataset


@dataclass
class FateBatch:
    """Fates waiting to be written. With a shard, every write renews its lease in the same
    transaction (and fails with ShardLost if another worker took the shard over)."""

    version: DatasetVersion
    actor: Actor
    shard: ExportShard | None = None
    worker: str = ""
    pending: list[Fate] = field(default_factory=list)

    def flush(self, *, finished: bool = False) -> None:
        with transaction.atomic():
            if self.shard is not None:
                if finished:
                    shard_finish(shard=self.shard, worker=self.worker)
                else:
                    shard_renew(shard=self.shard, worker=self.worker)
            if self.pending:
                fates_record(version=self.version, actor=self.actor, fates=self.pending)
        self.pending = []


def fates_record(*, version: DatasetVersion, actor: Actor, fates: list[Fate]) -> None:
    """Fates, their ledger events, pseudonyms and progress, in the caller's transaction."""
    dataset = version.dataset
    with transaction.atomic():
        VersionStudy.objects.bulk_create([VersionStudy(
            version=version, study=f.study, included=f.included, violation=f.violation,
            reason=f.reason, pseudo_study_uid=f.pseudo_uid, files=f.files) for f in fates])
        ledger.record_drafts([ledger.event_draft(
            action=("export.violation" if f.violation else "export.included")
            if f.included else "export.excluded",
            event_code=codes.EXPORT, actor=actor, patient_ref=f.study.patient_id,
            study_uid=f.study.study_uid, dataset_ref=dataset.pk,
            purpose_code=dataset.purpose.code, legal_basis=dataset.legal_basis,
            consent_record_ids=list(f.decision.record_ids), reason=f.reason,
            outcome="success" if f.included else "denied",
            details={"version": version.number, "recipient": dataset.recipient,
                     "pseudonymous_study_uid": f.pseudo_uid, "files": f.files,
                     **({"pixels": f.pixels} if f.pixels else {})}) for f in fates])
        Pseudonym.objects.bulk_create(
            [Pseudonym(dataset=dataset, patient_id=f.study.patient_id, pseudonym=f.pseudonym)
             for f in fates if f.pseudonym], ignore_conflicts=True)
        progress_add(version_id=version.pk, studies=len(fates),
                     files=sum(f.files for f in fates), size=sum(f.size for f in fates))
