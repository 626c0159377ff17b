"""Withdrawn means no more copies: a version that received a withdrawal notice is handed out
only without the withdrawn studies (re-signed); the recipient's confirmation of deletion is
recorded once, as a ledger event the patient reads under "Who used my data"."""

import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form, patient_uses
from consent.services import consent_record
from datasets.exports import version_dir
from datasets.models import VersionStudy, WithdrawalNotice
from datasets.packaging import version_download, zip_name
from datasets.withdrawals import withdrawal_confirm
from tests.clients import signed_in
from tests.datasets.helpers import STEWARD, make_dataset, run_export


@pytest.fixture
def delivered_then_withdrawn(steward, hospital, data_dir, django_capture_on_commit_callbacks):
    """Ann's knee and chest went out; then she said no to AI training for her knee MR."""
    version = run_export(make_dataset(steward, selection={"date_from": "2025-01-01"}),
                         django_capture_on_commit_callbacks)
    version_download(version, STEWARD)  # the recipient had the full version once
    knee = VersionStudy.objects.get(version=version, study__description="MR KNEE LEFT")
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(patient=hospital["ann"], purpose=Purpose.objects.get(code="ai-training"),
                       decision="deny", actor=STEWARD, source="portal", form=current_form(),
                       scope_kind="study", scope_value=knee.study.study_uid)
    return version, knee


def test_the_version_is_no_longer_handed_out_as_it_was(delivered_then_withdrawn, tmp_path):
    version, knee = delivered_then_withdrawn
    path = version_download(version, STEWARD)
    assert path.name == f"{zip_name(version)}.zip" and "without-1-withdrawn" in path.name
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path)
    assert not [n for n in names if knee.pseudo_study_uid in n]
    kept = VersionStudy.objects.filter(version=version, included=True).exclude(pk=knee.pk)
    assert all(any(s.pseudo_study_uid in n for n in names) for s in kept)
    copy = tmp_path / zip_name(version)
    call_command("verify_export", str(copy))  # re-signed, every file listed
    manifest = (copy / "manifest.json").read_text()
    assert knee.pseudo_study_uid in manifest  # named as withdrawn, not as included
    assert '"withdrawn_since_delivery"' in manifest
    # The original folder is untouched, for the hospital's own record.
    assert (version_dir(version) / knee.pseudo_study_uid).is_dir()


def test_the_steward_page_offers_only_the_copy_without_withdrawn_studies(
        delivered_then_withdrawn, steward):
    version, knee = delivered_then_withdrawn
    response = signed_in(steward).get(f"/datasets/versions/{version.pk}/download/")
    body = b"".join(response.streaming_content)
    assert response.status_code == 200 and "without-1-withdrawn" in response[
        "Content-Disposition"]
    assert knee.pseudo_study_uid.encode() not in body.split(b"manifest")[0]


def test_the_recipients_confirmation_is_recorded_once_and_the_patient_reads_it(
        delivered_then_withdrawn, steward, hospital):
    notice = WithdrawalNotice.objects.get()
    client = signed_in(steward)
    page = client.get(f"/datasets/{notice.version.dataset_id}/").content.decode()
    assert "Open</strong>: deletion not confirmed yet" in page
    client.post(f"/datasets/notices/{notice.pk}/confirm/",
                {"confirmed_by": "Dr Lin, Acme AI Lab", "how": "email of 3 Dec 2026"})
    notice.refresh_from_db()
    assert notice.confirmed_at and notice.confirmed_by == "Dr Lin, Acme AI Lab"
    page = client.get(f"/datasets/{notice.version.dataset_id}/").content.decode()
    assert "Deletion confirmed</strong> by Dr Lin, Acme AI Lab" in page
    event = AuditEvent.objects.get(action="dataset.withdrawal_confirmed")
    assert event.patient_ref == str(hospital["ann"].pk)
    with pytest.raises(ValidationError, match="confirmed already"):
        withdrawal_confirm(notice=notice, confirmed_by="x", how="y", actor=STEWARD)
    uses = [e.action for e in patient_uses(hospital["ann"])]
    assert "dataset.withdrawal_notice" in uses and "dataset.withdrawal_confirmed" in uses
    ann = hospital["ann"]
    from tests.conftest import make_user

    ann.user = make_user("ann", "patient")
    ann.save()
    mine = signed_in(ann.user).get(f"/portal/{ann.pk}/uses/").content.decode()
    assert "was told to stop using your scans and delete them" in mine
    assert "told us they deleted your scans (email of 3 Dec 2026)" in mine


@pytest.mark.parametrize(("who", "how", "message"), [
    ("", "email", "who at the recipient"), ("Dr Lin", " ", "how they confirmed")])
def test_an_incomplete_confirmation_records_nothing(delivered_then_withdrawn, steward, who,
                                                    how, message):
    notice = WithdrawalNotice.objects.get()
    page = signed_in(steward).post(f"/datasets/notices/{notice.pk}/confirm/",
                                   {"confirmed_by": who, "how": how}, follow=True)
    assert "Nothing was recorded" in page.content.decode() and message in \
        page.content.decode()
    notice.refresh_from_db()
    assert notice.confirmed_at is None
    assert not AuditEvent.objects.filter(action="dataset.withdrawal_confirmed").exists()
