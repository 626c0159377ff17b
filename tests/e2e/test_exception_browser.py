"""The portal's "Make an exception" in a real browser (Playwright driving Debian's
chromium), with and without JavaScript: only valid pairs are offered, and before the
patient confirms, the page shows which of their scans the exception covers, or that it
covers none today. Skipped only where /usr/bin/chromium is missing outside CI."""

import pytest

from consent.models import ConsentRecord
from registry.models import ImagingStudy
from tests.consent.factories import make_series, make_study
from tests.e2e.conftest import needs_chromium, shot

pytestmark = needs_chromium


def _scans(patient):
    head = make_study(patient, ("CT", "HEAD"))
    brain = make_study(patient, ("MR", "BRAIN"))
    chest = make_study(patient, ("CR", "CHEST"))
    # An X-ray that names no anatomy anywhere, as many CR/DX/US files do.
    unknown = ImagingStudy.objects.create(study_uid="1.2.826.0.77.1", patient=patient)
    make_series(unknown, "1.2.826.0.77.1.1", "DX", "")
    for study, description, day in [(head, "CT HEAD WITHOUT CONTRAST", "2026-03-02"),
                                     (brain, "MR BRAIN", "2026-02-01"),
                                     (chest, "CR CHEST PA", "2026-01-10"),
                                     (unknown, "DX PORTABLE", "2025-12-24")]:
        ImagingStudy.objects.filter(pk=study.pk).update(description=description,
                                                        study_date=day)
    return head, brain, chest, unknown


def _sign_in(page, base):
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("pw-alice")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/choices/")


@pytest.mark.parametrize("javascript", [True, False])
def test_the_exception_preview_lists_the_scans_it_covers(committed_db, live_server,
                                                         browser_page, patient, javascript):
    _scans(patient)
    context = browser_page.context.browser.new_context(java_script_enabled=javascript,
                                                       viewport={"width": 1100, "height": 900})
    page = context.new_page()
    _sign_in(page, live_server.url)

    page.get_by_text("Make an exception for one scan, a kind of scan or a part of the body"
                     ).click()
    offered = [o.get_attribute("value")
               for o in page.get_by_label("For").locator("option").all()]
    assert "body_part:HEAD" in offered and "modality:CT" in offered
    assert "modality:CHEST" not in offered and "body_part:CT" not in offered
    assert all(o.split(":", 1)[0] in ("body_part", "modality", "study") for o in offered)

    page.get_by_label("Use").select_option("ai-training")
    page.get_by_label("Answer").select_option("deny")
    page.get_by_label("For").select_option("body_part:HEAD")
    page.get_by_role("button", name="Continue").click()
    coverage = page.locator(".coverage").inner_text()
    assert "scans of your head and brain" in page.locator(".confirm-text").inner_text()
    assert "This applies to 3 of your scans" in coverage
    assert "CT head without contrast" in coverage and "MR brain" in coverage
    assert "DX portable" in coverage and "not recorded for this scan" in coverage
    assert "CR chest PA" not in coverage
    if javascript:
        shot(page, "portal-exception-preview")
    page.get_by_role("button", name="Confirm").click()
    assert "Saved" in page.locator(".messages").inner_text()
    record = ConsentRecord.objects.get()
    assert (record.scope_kind, record.scope_value, record.decision) == (
        "body_part", "HEAD", "deny")

    page.get_by_text("Make an exception for one scan, a kind of scan or a part of the body"
                     ).click()
    page.get_by_label("For").select_option("modality:MG")
    page.get_by_role("button", name="Continue").click()
    assert "This covers none of your scans today" in page.locator(".coverage").inner_text()
    page.get_by_role("link", name="Cancel").click()
    assert ConsentRecord.objects.count() == 1
    context.close()
