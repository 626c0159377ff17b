"""Withdrawal notices: when what went out on a patient's consent is no longer covered by it,
every delivered version holding such a study gets a notice listing the affected pseudonymous
studies, the owner is emailed, and the ledger records it. The next version leaves the
studies out by itself: it decides afresh.

Three moments find them, and each decides afresh rather than trusting a record's scope (a
deny for one modality, or for a parent purpose, withdraws some studies and not others):

- a deny (``consent.changed``, from the outbox): the complete versions holding the
  patient's studies;
- a version completing: its own studies, for a deny that landed while it was being written
  after the study's re-check (README, "Exports", says why a notice rather than a drop);
- the daily job: studies whose permit has expired, or whose deny dated in the future has
  started, since delivery.

A study is noticed at most once per version (``WithdrawnStudy`` is one-to-one), so the
moments may overlap freely."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from audit import ledger
from audit.ledger import Actor
from consent.engine import PurposeTree, decide_many
from consent.models import ConsentRecord, Decision
from datasets.models import (
    DatasetVersion,
    NoticeCause,
    VersionStatus,
    VersionStudy,
    WithdrawalNotice,
    WithdrawnStudy,
)
from outbox.services import outbox_publish
from registry.models import ImagingStudy

NOTICE_EMAIL = "datasets.withdrawal_notice_email"


def _held() -> QuerySet[VersionStudy]:
    """Studies that went out on consent (not under a legal basis) and are not noticed yet."""
    return VersionStudy.objects.filter(included=True, violation=False,
                                       withdrawal__isnull=True)


def withdrawal_notices_create(*, record: ConsentRecord) -> list[WithdrawalNotice]:
    """Notices for the complete versions that now hold a study this patient no longer
    consents to, naming the deny that caused them. Idempotent."""
    held = _held().filter(version__status=VersionStatus.COMPLETE,
                          study__patient_id=record.patient_id)
    return _notices(held, at=timezone.now(), record=record,
                    actor=Actor.system("withdrawal notices"),
                    reason="consent withdrawn after delivery")


def version_withdrawals_notice(*, version: DatasetVersion) -> list[WithdrawalNotice]:
    """Run once the version is complete: a deny that landed after a study's re-check but
    before the version was marked complete found no complete version to notice, so the
    version looks at its own studies. Idempotent."""
    held = _held().filter(version=version, version__status=VersionStatus.COMPLETE)
    return _notices(held, at=timezone.now(), record=None,
                    actor=Actor.system("withdrawal notices"),
                    reason="consent withdrawn while the version was being written")


def lapsed_consent_notices_create(*, at: datetime | None = None) -> list[WithdrawalNotice]:
    """The daily job: studies delivered on a permit that has since expired, or before a
    deny dated in the future that has since started. Idempotent."""
    at = at or timezone.now()
    turned = ConsentRecord.objects.filter(
        Q(expires_at__lte=at)
        | Q(decision=Decision.DENY, effective_from__lte=at,
            effective_from__gt=F("recorded_at")))
    held = _held().filter(version__status=VersionStatus.COMPLETE,
                          study__patient_id__in=turned.values("patient_id"))
    return _notices(held, at=at, record=None, actor=Actor.system("consent expiry check"),
                    reason="consent expired or a dated refusal started after delivery")


def _notices(held: QuerySet[VersionStudy], *, at: datetime, record: ConsentRecord | None,
             actor: Actor, reason: str) -> list[WithdrawalNotice]:
    """Decide the held studies afresh, per dataset purpose (set-based), and give each
    version one notice per patient and cause for the studies no longer allowed."""
    tree = PurposeTree.load()
    by_purpose: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)
    for held_id, version_id, study_id, patient_id, purpose_id in held.values_list(
            "pk", "version_id", "study_id", "study__patient_id",
            "version__dataset__purpose_id"):
        by_purpose[purpose_id].append((held_id, version_id, study_id, patient_id))
    found: dict[tuple[int, int, str, int], list[int]] = defaultdict(list)
    for purpose_id, rows in sorted(by_purpose.items()):
        studies = ImagingStudy.objects.filter(pk__in={row[2] for row in rows})
        decisions = decide_many(studies, tree.by_id[purpose_id], at, tree=tree)
        for held_id, version_id, study_id, patient_id in rows:
            decision = decisions[study_id]
            if decision.allowed:
                continue
            if record is not None:
                cause, record_id = NoticeCause.WITHDRAWN, record.pk
            elif decision.record_ids:
                cause, record_id = NoticeCause.WITHDRAWN, max(decision.record_ids)
            else:  # no deny decides it: the permit that allowed it has gone
                cause, record_id = NoticeCause.LAPSED, 0
            found[(version_id, patient_id, cause, record_id)].append(held_id)
    return [notice for (version_id, patient_id, cause, record_id), ids in sorted(found.items())
            if (notice := _notice(version_id, patient_id, ids, cause=cause,
                                  record_id=record_id or None, actor=actor,
                                  reason=reason)) is not None]


@transaction.atomic
def _notice(version_id: int, patient_id: int, version_study_ids: list[int], *, cause: str,
            record_id: int | None, actor: Actor, reason: str) -> WithdrawalNotice | None:
    # Locking the version serialises two notices for it arriving at once (a deny's handler
    # and the version's own check at completion): the second finds the studies taken.
    version = (DatasetVersion.objects.select_for_update().select_related("dataset__purpose")
               .get(pk=version_id))
    studies = list(VersionStudy.objects.filter(pk__in=version_study_ids,
                                               withdrawal__isnull=True).order_by("pk"))
    if not studies:
        return None
    notice = WithdrawalNotice.objects.create(version=version, cause=cause,
                                             consent_record_id=record_id)
    WithdrawnStudy.objects.bulk_create(
        [WithdrawnStudy(notice=notice, version_study=s) for s in studies])
    dataset = version.dataset
    ledger.record(
        action="dataset.withdrawal_notice", actor=actor, patient_ref=patient_id,
        dataset_ref=dataset.pk, purpose_code=dataset.purpose.code,
        consent_record_ids=[record_id] if record_id else [],
        reason=reason if cause == NoticeCause.WITHDRAWN else "consent expired after delivery",
        details={"version": version.number, "notice": notice.pk, "cause": cause,
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
    what = ("A patient has withdrawn consent" if notice.cause == NoticeCause.WITHDRAWN
            else "A patient's consent has expired")
    if dataset.owner.email:
        send_mail(
            subject=f"{notice.get_cause_display()}: {dataset.name} version "
                    f"{notice.version.number}",
            message=(f"{what} for {len(uids)} "
                     f"{'study' if len(uids) == 1 else 'studies'} in version "
                     f"{notice.version.number} of the dataset {dataset.name!r}, delivered to "
                     f"{dataset.recipient}.\n\nStop using them and ask the recipient to "
                     f"delete them. Pseudonymous StudyInstanceUIDs:\n\n"
                     + "\n".join(f"  {uid}" for uid in uids)
                     + "\n\nThe next version of the dataset leaves them out."),
            from_email=None, recipient_list=[dataset.owner.email])
    WithdrawalNotice.objects.filter(pk=notice.pk).update(emailed_at=timezone.now())


@transaction.atomic
def withdrawal_confirm(*, notice: WithdrawalNotice, confirmed_by: str, how: str,
                       actor: Actor) -> WithdrawalNotice:
    """Record the recipient's confirmation that they deleted the withdrawn studies: who
    confirmed and how (an email of a date, a signed form …). Once; a ledger event the
    patient sees."""
    notice = (WithdrawalNotice.objects.select_for_update()
              .select_related("version__dataset__purpose").get(pk=notice.pk))
    confirmed_by, how = confirmed_by.strip()[:200], how.strip()[:500]
    if not confirmed_by:
        raise ValidationError({"confirmed_by": "say who at the recipient confirmed"})
    if not how:
        raise ValidationError({"how": "say how they confirmed (an email, a signed form …)"})
    if notice.confirmed_at is not None:
        raise ValidationError({"confirmed_by": "this notice was confirmed already"})
    notice.confirmed_at = timezone.now()
    notice.confirmed_by, notice.confirmation = confirmed_by, how
    notice.save(update_fields=["confirmed_at", "confirmed_by", "confirmation"])
    dataset = notice.version.dataset
    studies = notice.studies.select_related("version_study__study")
    for patient_id in sorted({s.version_study.study.patient_id for s in studies}):
        ledger.record(
            action="dataset.withdrawal_confirmed", actor=actor, patient_ref=patient_id,
            dataset_ref=dataset.pk, purpose_code=dataset.purpose.code,
            details={"version": notice.version.number, "notice": notice.pk,
                     "recipient": dataset.recipient, "confirmed_by": confirmed_by,
                     "how": how})
    return notice
