"""A patient in a real browser (Playwright driving Debian's chromium): accepts an invite,
sets a password, says no to AI training for head scans, sees it on "My scans" and in
"History", and cannot open another patient's study. Screenshots go to docs/screenshots/.

Skipped only where /usr/bin/chromium is missing outside CI; CI installs it."""

from django.core import mail

from audit.ledger import Actor
from consent.invitations import patient_invite
from tests.consent.factories import make_study
from tests.e2e.conftest import needs_chromium, shot

pytestmark = needs_chromium


def test_patient_accepts_invite_opts_out_of_ai_for_head_scans(committed_db, live_server,
                                                              inline_celery, browser_page,
                                                              staff, patient, other_patient):
    page = browser_page
    head = make_study(patient, ("CT", "HEAD"))
    chest = make_study(patient, ("CR", "CHEST"))
    for study, description, modality, part in [(head, "CT HEAD WITHOUT CONTRAST", "CT", "HEAD"),
                                               (chest, "CR CHEST PA", "CR", "CHEST")]:
        type(study).objects.filter(pk=study.pk).update(
            description=description, study_date="2026-03-02", modalities=modality,
            body_parts=part)
    bobs_study = make_study(other_patient, ("MR", "KNEE"))
    patient.user = None
    patient.save(update_fields=["user"])
    mail.outbox.clear()
    patient_invite(patient=patient, email="alice@example.org",
                   actor=Actor(label=staff.username, role="staff"))
    [message] = mail.outbox  # sent by the outbox after the commit
    link = next(line for line in message.body.splitlines() if "/portal/invite/" in line)

    page.goto(link.replace("http://127.0.0.1:8000", live_server.url))
    page.get_by_label("New password", exact=True).fill("a-long-passphrase-9")
    page.get_by_label("New password again").fill("a-long-passphrase-9")
    page.get_by_role("button", name="Set password").click()
    page.wait_for_url("**/choices/")
    assert page.get_by_role("heading", name="My choices").is_visible()
    shot(page, "portal-choices")

    page.get_by_role("button", name="Say yes to Training AI tools", exact=True).click()
    page.get_by_role("button", name="Confirm").click()
    assert "Saved" in page.locator(".messages").inner_text()

    page.get_by_text("Make an exception for one scan, a kind of scan or a part of the body"
                      ).click()
    page.get_by_label("Use").select_option("ai-training")
    page.get_by_label("Answer").select_option("deny")
    page.get_by_label("For").select_option("body_part:HEAD")
    page.get_by_role("button", name="Continue").click()
    assert "scans of your head" in page.locator(".confirm-text").inner_text()
    assert "This applies to 1 of your scans" in page.locator(".coverage").inner_text()
    shot(page, "portal-confirm")
    page.get_by_role("button", name="Confirm").click()
    assert "Saved" in page.locator(".messages").inner_text()

    page.get_by_role("link", name="My scans").click()
    head_cell = page.locator(f'tr[data-study-id="{head.pk}"] td[data-purpose="ai-training"]')
    chest_cell = page.locator(
        f'tr[data-study-id="{chest.pk}"] td[data-purpose="ai-training"]')
    assert head_cell.inner_text().startswith("Not allowed")
    assert chest_cell.inner_text().startswith("Allowed")
    shot(page, "portal-scans")

    page.get_by_role("link", name="History").click()
    assert "scans of your head" in page.locator(".history").inner_text()
    shot(page, "portal-history")

    page.get_by_role("link", name="Who used my data").click()
    assert "No one has used your scans" in page.content()
    shot(page, "portal-uses")

    own = page.goto(f"{live_server.url}/portal/{patient.pk}/scans/{head.pk}/")
    assert own.status == 200
    response = page.goto(f"{live_server.url}/portal/{patient.pk}/scans/{bobs_study.pk}/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/portal/{other_patient.pk}/scans/{bobs_study.pk}/")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/portal/{other_patient.pk}/choices/")
    assert response.status == 404
