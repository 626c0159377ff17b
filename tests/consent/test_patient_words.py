"""What patients read: their own words, no UIDs, codes or record numbers; the consent text
of each version; a copy of their choices to keep."""

import re

import pytest
from django.urls import reverse

from audit import ledger
from audit.ledger import Actor
from consent.models import ConsentForm
from consent.wording import count_words, scan_name
from registry.models import ImagingStudy
from tests.clients import signed_in as client_for
from tests.consent.factories import make_record, make_study

UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")


def visible(html: str) -> str:
    """The page's words, without tags or attribute values (a form may carry a UID in a
    hidden field; the person never reads it)."""
    body = html.split("<main", 1)[1]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize(("description", "modalities", "expected"), [
    ("CT HEAD WITHOUT CONTRAST", "CT", "CT head without contrast"),
    ("MRI KNEE (LEFT)", "MR", "MRI knee (left)"),
    ("CR CHEST PA", "CR", "CR chest PA"),
    ("Knee MRI, left", "MR", "Knee MRI, left"),
    ("", "MR", "MRI scan"),
    ("", "CT\\PT", "CT scan and PET scan"),
    ("", "", "Scan"),
])
def test_scan_names_are_written_as_people_write_them(description, modalities, expected):
    assert scan_name(description, modalities) == expected


def test_counts_agree_with_their_noun():
    assert count_words(1, "image", "images") == "1 image"
    assert count_words(3, "image", "images") == "3 images"


@pytest.fixture
def head_ct(patient):
    study = make_study(patient, ("CT", "HEAD"))
    ImagingStudy.objects.filter(pk=study.pk).update(
        description="CT HEAD WITHOUT CONTRAST", study_date="2026-03-02", instance_count=1)
    study.refresh_from_db()
    return study


def test_a_scan_page_speaks_to_the_patient_without_record_ids(patient, head_ct):
    record = make_record(patient, "ai-training", "deny", scope_kind="body_part",
                         scope_value="HEAD")
    page = client_for(patient.user).get(
        reverse("portal-scan", args=[patient.pk, head_ct.pk])).content.decode()
    words = visible(page)
    assert "CT head without contrast" in words and "CT HEAD" not in words
    assert "2 March 2026" in words
    assert "1 image" in words and "1 images" not in words
    assert "You said no to training AI tools for scans of your head" in words
    assert "the patient" not in words and "record" not in words.lower()
    assert f"({record.pk}" not in words
    assert not UID.search(words)


def test_a_scan_decided_by_default_says_so_in_the_first_person(patient, head_ct):
    words = visible(client_for(patient.user).get(
        reverse("portal-scan", args=[patient.pk, head_ct.pk])).content.decode())
    assert "You have not said yes to training AI tools" in words
    assert "opt-in" not in words and "the patient" not in words


def test_my_scans_uses_names_and_dates_not_uids(patient, head_ct):
    words = visible(client_for(patient.user).get(
        reverse("portal-scans", args=[patient.pk])).content.decode())
    assert "CT head without contrast" in words and "2 March 2026" in words
    assert not UID.search(words)
    assert "record" not in words.lower()


def test_who_used_my_data_names_the_scan_and_the_use_not_the_uid_or_code(patient, head_ct):
    ledger.record(action="export.included", actor=Actor(label="export"),
                  patient_ref=patient.pk, study_uid=head_ct.study_uid, dataset_ref=7,
                  purpose_code="ai-training", legal_basis="",
                  details={"recipient": "Acme Imaging Lab", "version": 1})
    ledger.record(action="export.violation", actor=Actor(label="export"),
                  patient_ref=patient.pk, study_uid=head_ct.study_uid, dataset_ref=8,
                  purpose_code="research", legal_basis="IRB waiver W-1 (Board, Dr Q)",
                  details={"recipient": "City University"})
    words = visible(client_for(patient.user).get(
        reverse("portal-uses", args=[patient.pk])).content.decode())
    assert "your scan “CT head without contrast” was shared with Acme Imaging Lab for " \
           "training AI tools, because you said yes" in words
    assert "without your yes, under a research approval (IRB waiver W-1" in words
    assert "ai-training" not in words and "for medical research, without your yes" in words
    assert not UID.search(words)
    assert "dataset 7" not in words


def test_history_links_each_choice_to_the_text_it_was_made_under(patient, head_ct):
    record = make_record(patient, "research", "permit")
    client = client_for(patient.user)
    page = client.get(reverse("portal-history", args=[patient.pk])).content.decode()
    link = reverse("portal-consent-text", args=[patient.pk, record.form_id])
    assert f'href="{link}"' in page
    text = client.get(link)
    assert text.status_code == 200
    assert record.form.text.splitlines()[0] in text.content.decode()
    assert "This is the text in use today" in text.content.decode()


def test_an_older_text_says_a_newer_one_is_in_use(patient):
    old = ConsentForm.objects.get(code="imaging-use", version=1)
    ConsentForm.objects.create(code="imaging-use", version=2, title=old.title, text="New text",
                               text_sha256="0" * 64, published_at=old.published_at)
    page = client_for(patient.user).get(
        reverse("portal-consent-text", args=[patient.pk, old.pk])).content.decode()
    assert "A newer version is in use today" in page


def test_consent_text_of_a_missing_version_or_another_patient_is_not_found(patient,
                                                                          other_patient):
    form = ConsentForm.objects.get(code="imaging-use", version=1)
    client = client_for(patient.user)
    assert client.get(reverse("portal-consent-text", args=[patient.pk, 99999])
                      ).status_code == 404
    assert client.get(reverse("portal-consent-text", args=[other_patient.pk, form.pk])
                      ).status_code == 404


def test_the_receipt_lists_choices_and_exceptions_in_words(patient, head_ct):
    make_record(patient, "research", "permit")
    make_record(patient, "ai-training", "deny", scope_kind="study",
                scope_value=head_ct.study_uid)
    client = client_for(patient.user)
    page = client.get(reverse("portal-receipt", args=[patient.pk])).content.decode()
    words = visible(page)
    assert "Alice Liddell" in words
    assert "No to training AI tools for your scan “CT head without contrast”" in words
    assert re.search(r"Medical research\s*</th>\s*<td[^>]*>Yes", page)
    assert "Print or save as PDF" in page and "js/print.js" in page
    assert not UID.search(words)


def test_another_patients_receipt_is_not_found(patient, other_patient):
    response = client_for(patient.user).get(reverse("portal-receipt", args=[other_patient.pk]))
    assert response.status_code == 404


def test_exceptions_name_the_scan_not_its_uid(patient, head_ct):
    make_record(patient, "ai-training", "deny", scope_kind="study",
                scope_value=head_ct.study_uid)
    words = visible(client_for(patient.user).get(
        reverse("portal-choices", args=[patient.pk])).content.decode())
    assert "for your scan “CT head without contrast”" in words
    assert not UID.search(words)
