"""The paper-consent form keeps the clerk's work: after an error every value is still there
(the attached scan included), each error is beside its field in plain words with a format
hint, and nothing was recorded."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from consent.models import ConsentForm, ConsentRecord
from tests.clients import signed_in as client_for


def paper(**overrides):
    data = {"purpose": "ai-training", "decision": "deny", "scope_kind": "body_part",
            "scope_value": "chest", "source": "verbal", "witness": "J. Doe, registrar",
            "form_version": ConsentForm.objects.get(version=1).pk,
            "proxy_name": "Ann Liddell", "proxy_relationship": "mother",
            "effective_from": "2026-03-02", "expires_at": ""}
    data.update(overrides)
    return data


def field_block(page: str, name: str) -> str:
    """The markup of one field (label, hint, error, input)."""
    match = re.search(rf'<div class="field[^"]*">\s*<label for="id_{name}".*?</div>', page, re.S)
    assert match, name
    return match.group(0)


def test_an_invalid_date_keeps_every_value_and_the_scan(staff, patient, data_dir):
    """Reproduction: an invalid date reset the decision to Permit, dropped the attached
    scan and showed 'effective_from: Enter a valid date/time.' in a green banner."""
    client = client_for(staff)
    scan = SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed", "application/pdf")
    response = client.post(f"/desk/patients/{patient.pk}/consent/",
                           {**paper(effective_from="02/31/2026"), "scanned_form": scan})
    assert response.status_code == 400
    page = response.content.decode()
    assert ConsentRecord.objects.count() == 0
    # The error sits beside its field, in plain words, with the format to use.
    block = field_block(page, "effective_from")
    assert "Enter a date like 2026-03-02" in block and 'aria-invalid="true"' in block
    assert 'value="02/31/2026"' in block
    assert "effective_from:" not in page and "Enter a valid date/time" not in page
    assert 'class="message error"' in page
    # Every other value as typed.
    assert re.search(r'<option value="deny" selected>', field_block(page, "decision"))
    assert re.search(r'<option value="ai-training" selected>', field_block(page, "purpose"))
    assert re.search(r'<option value="verbal" selected>', field_block(page, "source"))
    for name, value in (("witness", "J. Doe, registrar"), ("proxy_name", "Ann Liddell"),
                        ("proxy_relationship", "mother")):
        assert f'value="{value}"' in field_block(page, name)
    assert "signed.pdf" in page
    kept = re.search(r'name="kept_scan" value="([^"]+)"', page).group(1)

    # Corrected, without attaching the scan again: recorded, with the kept scan.
    response = client.post(f"/desk/patients/{patient.pk}/consent/",
                           {**paper(effective_from="2026-03-02"), "kept_scan": kept},
                           follow=True)
    assert "Consent recorded" in response.content.decode()
    record = ConsentRecord.objects.get()
    assert record.decision == "deny" and record.attachment_name == "signed.pdf"
    assert (data_dir / "consent-forms" / f"{record.attachment_sha256}.pdf").exists()


def test_every_date_field_shows_its_format(staff, patient):
    page = client_for(staff).get(f"/desk/patients/{patient.pk}/").content.decode()
    for name in ("effective_from", "expires_at"):
        assert "2026-03-02" in field_block(page, name) or "2027-03-02" in field_block(page,
                                                                                    name)


@pytest.mark.parametrize("token", ["forged", ""])
def test_a_forged_kept_scan_is_refused_or_ignored(staff, patient, token):
    response = client_for(staff).post(f"/desk/patients/{patient.pk}/consent/",
                                      {**paper(), "kept_scan": token})
    if token:
        assert response.status_code == 400
        assert "attach it again" in field_block(response.content.decode(), "scanned_form")
        assert ConsentRecord.objects.count() == 0
    else:
        assert response.status_code == 302
        assert ConsentRecord.objects.get().attachment_name == ""


def test_a_kept_scan_is_for_one_patient_only(staff, patient, other_patient):
    client = client_for(staff)
    scan = SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed", "application/pdf")
    page = client.post(f"/desk/patients/{patient.pk}/consent/",
                       {**paper(effective_from="nope"), "scanned_form": scan}).content.decode()
    kept = re.search(r'name="kept_scan" value="([^"]+)"', page).group(1)
    response = client.post(f"/desk/patients/{other_patient.pk}/consent/",
                           {**paper(), "kept_scan": kept})
    assert response.status_code == 400
    assert ConsentRecord.objects.count() == 0
