"""Each person's pages in a real browser, at a desktop window (1280 px) and a phone
(390 px): nothing may scroll sideways, axe-core (from npm, run in the page) may find no
violation, and a patient's pages may show no raw UID, record id or purpose code.

The data is the demo's (`manage.py demo`), with its export run once so "Who used my data"
and the steward's version page have something to show."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from audit.ledger import Actor
from consent.models import Purpose
from datasets.exports import dataset_create, export_request
from datasets.models import Dataset, DatasetVersion
from registry.models import Patient
from tests.clients import sign_in
from tests.e2e.conftest import axe_violations, needs_chromium, overflow, shot

pytestmark = needs_chromium

WIDTHS = (1280, 390)
UID = re.compile(r"\b\d+(?:\.\d+){3,}\b")
RECORD_ID = re.compile(r"\brecord \d+|\brecords? #?\d+", re.I)
PURPOSE_CODES = ("ai-training", "external-sharing", "opt-in", "opt-out")


@pytest.fixture
def demo(committed_db, inline_celery):
    call_command("demo", "--patients", "4", stdout=StringIO())
    steward = get_user_model().objects.get(username="steward")
    patient = Patient.objects.get(user__username="patient")
    # The demo patient says yes to AI training, so the export shares a scan of theirs.
    from consent.selectors import current_form
    from consent.services import consent_record

    consent_record(patient=patient, purpose=Purpose.objects.get(code="ai-training"),
                   decision="permit", actor=Actor(label="patient", role="patient"),
                   source="portal", form=current_form(), scope_kind="all", scope_value="")
    dataset = dataset_create(
        name="Walk cohort", purpose=Purpose.objects.get(code="ai-training"), owner=steward,
        recipient="Northwind AI Lab", selection={"date_from": "2000-01-01"},
        actor=Actor(label="steward", role="steward"))
    export_request(dataset=dataset, actor=Actor(label="steward", role="steward"))
    return {"patient": patient, "dataset": Dataset.objects.get(pk=dataset.pk),
            "version": DatasetVersion.objects.filter(dataset=dataset).latest("pk")}


def signed_in_context(browser, live_server, username: str, width: int):
    """A browser context carrying a session made the way sign-in makes one (second factor
    included), so each persona's walk does not spend time (or TOTP codes) on the form."""
    client = sign_in(Client(), get_user_model().objects.get(username=username))
    context = browser.new_context(viewport={"width": width, "height": 900}, bypass_csp=True)
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value,
                          "url": live_server.url}])
    return context


def walk(browser, live_server, username: str, paths: list[str], *, patient: bool = False,
         shots: str = "") -> list[str]:
    problems = []
    for width in WIDTHS:
        context = signed_in_context(browser, live_server, username, width)
        page = context.new_page()
        for path in paths:
            response = page.goto(live_server.url + path)
            where = f"{path} at {width}px"
            expected = 404 if "no-such-page" in path else 200
            if response.status != expected:
                problems.append(f"{where}: HTTP {response.status}")
                continue
            wider = overflow(page)
            if wider > 0:
                problems.append(f"{where}: {wider}px wider than the window")
            if width >= 1280:
                # Staff tables fit a desktop window: no table scrolls sideways in its box.
                for name in page.evaluate("""() => [...document.querySelectorAll('table')]
                        .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
                        .map(t => (t.caption && t.caption.innerText) || t.className)"""):
                    problems.append(f"{where}: table {name!r} is cut off")
            for violation in axe_violations(page):
                problems.append(f"{where}: axe {violation['id']} ({violation['impact']}): "
                                f"{violation['help']} at {violation['targets'][:3]}")
            if patient:
                text = page.locator("body").inner_text()
                for pattern in (UID, RECORD_ID):
                    if found := pattern.search(text):
                        problems.append(f"{where}: shows {found.group(0)!r}")
                problems += [f"{where}: shows the code {code!r}" for code in PURPOSE_CODES
                             if code in text]
            if shots:
                name = path.strip("/").replace("/", "-") or "home"
                # In a "walk" subfolder (ignored by git even under docs/screenshots): for
                # looking at, not for the README.
                shot(page, f"walk/{shots}-{re.sub(r'[0-9]+', 'n', name)}-{width}")
        context.close()
    return problems


def test_patient_pages_fit_a_phone_read_plainly_and_pass_axe(demo, live_server, browser):
    patient = demo["patient"]
    study = patient.studies.order_by("pk").first()
    form_id = patient.consents.order_by("pk").first().form_id
    base = f"/portal/{patient.pk}"
    paths = [f"{base}/choices/", f"{base}/scans/", f"{base}/scans/{study.pk}/",
             f"{base}/history/", f"{base}/history/text/{form_id}/", f"{base}/uses/",
             f"{base}/choices/receipt/", "/help/", "/no-such-page/"]
    assert walk(browser, live_server, "patient", paths, patient=True, shots="portal") == []


def test_staff_desk_fits_and_passes_axe(demo, live_server, browser):
    patient = demo["patient"]
    paths = ["/", "/desk/", f"/desk/patients/{patient.pk}/", "/tokens/"]
    assert walk(browser, live_server, "staff", paths, shots="desk") == []


def test_steward_pages_fit_and_pass_axe(demo, live_server, browser):
    paths = ["/datasets/", "/datasets/new/", f"/datasets/{demo['dataset'].pk}/",
             f"/datasets/{demo['dataset'].pk}/preview/",
             f"/datasets/versions/{demo['version'].pk}/"]
    assert walk(browser, live_server, "steward", paths, shots="steward") == []


def test_auditor_console_fits_and_passes_axe(demo, live_server, browser):
    paths = ["/audit/", "/audit/events/", "/audit/disclosures/", "/audit/export/"]
    assert walk(browser, live_server, "auditor", paths, shots="audit") == []
