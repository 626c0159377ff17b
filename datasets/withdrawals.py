"""Withdrawal notices: when a patient says no, every delivered version holding one of their
studies (sent on their consent) gets a notice listing the affected pseudonymous studies, the
owner is emailed, and the ledger records it. The next version leaves the studies out by
itself: it decides afresh."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from consent.engine import PurposeTree, decide
from consent.models import ConsentRecord
from datasets.models import (
    DatasetVersion,
    VersionStatus,
    VersionStudy,
    WithdrawalNotice,
    WithdrawnStudy,
)
from outbox.services import outbox_publish

NOTICE_EMAIL = "datasets.withdrawal_notice_email"


def withdrawal_notices_create(*, record: ConsentRecord) -> list[WithdrawalNotice]:
    """Notices for the versions that now hold a study this patient no longer consents to.

    Decides afresh rather than trusting the record's scope: a deny for one modality, or for
    a parent purpose, withdraws some studies and not others. Idempotent: a study is noticed
    once per version."""
    now = timezone.now()
    tree = PurposeTree.load()
    held = (VersionStudy.objects
            .filter(version__status=VersionStatus.COMPLETE, included=True, violation=False,
                    study__patient_id=record.patient_id, withdrawal__isnull=True)
            .select_related("version__dataset__purpose", "study"))
    withdrawn: dict[int, list[int]] = defaultdict(list)
    for held_study in held:
        dataset = held_study.version.dataset
        if not decide(held_study.study, dataset.purpose, now, tree=tree).allowed:
            withdrawn[held_study.version_id].append(held_study.pk)
    return [notice for version_id, ids in sorted(withdrawn.items())
            if (notice := _notice(version_id, ids, record)) is not None]


@transaction.atomic
def _notice(version_id: int, version_study_ids: list[int],
            record: ConsentRecord) -> WithdrawalNotice | None:
    # Locking the version serialises two withdrawals for the same patient arriving at once.
    version = (DatasetVersion.objects.select_for_update().select_related("dataset__purpose")
               .get(pk=version_id))
    studies = list(VersionStudy.objects.filter(pk__in=version_study_ids,
                                               withdrawal__isnull=True).order_by("pk"))
    if not studies:
        return None
    notice = WithdrawalNotice.objects.create(version=version, consent_record=record)
    WithdrawnStudy.objects.bulk_create(
        [WithdrawnStudy(notice=notice, version_study=s) for s in studies])
    dataset = version.dataset
    ledger.record(
        action="dataset.withdrawal_notice", actor=Actor.system("withdrawal notices"),
        patient_ref=record.patient_id, dataset_ref=dataset.pk,
        purpose_code=dataset.purpose.code, consent_record_ids=[record.pk],
        reason="consent withdrawn after delivery",
        details={"version": version.number, "notice": notice.pk,
                 "recipient": dataset.recipient,
                 "pseudonymous_study_uids": [s.pseudo_study_uid for s in studies]})
    outbox_publish(kind=NOTICE_EMAIL, payload={"notice_id": notice.pk})
    return notice


def consent_changed_handler(payload: dict[str, Any]) -> None:
    """Outbox handler for consent.changed (published by consent for every deny)."""
    record = ConsentRecord.objects.get(pk=payload["record_id"])
    withdrawal_notices_create(record=record)


def notice_email_send(payload: dict[str, Any]) -> None:
    """Outbox handler: tell the dataset's owner, after the notice committed."""
    notice = (WithdrawalNotice.objects
              .select_related("version__dataset__owner").get(pk=payload["notice_id"]))
    if notice.emailed_at:
        return
    dataset = notice.version.dataset
    uids = list(notice.studies.values_list("version_study__pseudo_study_uid", flat=True))
    if dataset.owner.email:
        send_mail(
            subject=f"Consent withdrawn: {dataset.name} version {notice.version.number}",
            message=(f"A patient has withdrawn consent for {len(uids)} "
                     f"{'study' if len(uids) == 1 else 'studies'} in version "
                     f"{notice.version.number} of the dataset {dataset.name!r}, delivered to "
                     f"{dataset.recipient}.\n\nStop using them and ask the recipient to "
                     f"delete them. Pseudonymous StudyInstanceUIDs:\n\n"
                     + "\n".join(f"  {uid}" for uid in uids)
                     + "\n\nThe next version of the dataset leaves them out."),
            from_email=None, recipient_list=[dataset.owner.email])
    WithdrawalNotice.objects.filter(pk=notice.pk).update(emailed_at=timezone.now())
