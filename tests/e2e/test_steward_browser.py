"""A data steward in a real browser: creates a dataset, previews the decision, runs the
export, sees what was left out and why; and a running export's progress moves on the page
without a reload. Screenshots go to docs/screenshots/."""

from io import StringIO

from django.core.management import call_command

from datasets.models import Dataset, DatasetVersion, VersionStatus, VersionStudy
from tests.clients import demo_code
from tests.e2e.conftest import needs_chromium, shot

pytestmark = needs_chromium


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill("steward")
    page.get_by_label("Password").fill("demo-steward-pass")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Code").fill(demo_code("steward"))
    page.get_by_role("button", name="Continue").click()


def test_steward_creates_previews_and_runs_an_export(committed_db, live_server, browser_page,
                                                     inline_celery):
    call_command("demo", "--patients", "8", stdout=StringIO())
    page = browser_page
    sign_in(page, live_server.url)
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Datasets").click()
    page.get_by_role("link", name="New dataset").click()
    page.get_by_label("Name").fill("Chest triage")
    page.get_by_label("Purpose").select_option("ai-training")
    page.get_by_label("Recipient").fill("Northwind AI Lab")
    page.get_by_label("Date from").fill("2020-01-01")
    shot(page, "steward-new-dataset")
    page.get_by_role("button", name="Create dataset").click()
    assert page.get_by_role("heading", name="Chest triage").is_visible()
    # What the form made, read from the database rather than from the page it typed into.
    dataset = Dataset.objects.get(name="Chest triage")
    assert (dataset.purpose.code, dataset.recipient, dataset.selection) == (
        "ai-training", "Northwind AI Lab", {"date_from": "2020-01-01"})
    assert dataset.owner.username == "steward"

    page.get_by_role("link", name="Preview the decision").click()
    assert "Would be included" in page.content()
    shot(page, "steward-preview")
    page.get_by_role("button", name="Run the export").click()
    page.wait_for_url("**/datasets/versions/*/")
    assert page.locator('[data-field="status"]').inner_text() == "Complete"
    reasons = page.locator("h2:has-text('Left out, by reason') + table").inner_text()
    assert "no consent" in reasons and "3D head study" in reasons
    assert page.get_by_role("link", name="Download version 1 (zip)").is_visible()
    shot(page, "steward-version")
    version = DatasetVersion.objects.get(dataset=dataset)
    assert version.status == VersionStatus.COMPLETE
    left_out = VersionStudy.objects.filter(version=version, included=False)
    included = VersionStudy.objects.filter(version=version, included=True)
    assert included.exists() and left_out.exists()
    assert left_out.filter(reason__contains="no consent").exists()
    # The page's counts are the database's.
    assert page.locator('[data-field="studies_done"]').inner_text() == str(
        version.studies_done) == str(included.count() + left_out.count())


def test_progress_moves_without_a_reload(committed_db, live_server, browser_page):
    from django.contrib.auth import get_user_model

    from audit.ledger import Actor
    from consent.models import Purpose
    from datasets.exports import dataset_create

    call_command("demo", "--patients", "1", stdout=StringIO())
    steward = get_user_model().objects.get(username="steward")
    dataset = dataset_create(name="Knees", purpose=Purpose.objects.get(code="ai-training"),
                             owner=steward, recipient="Lab", actor=Actor(label="t"),
                             selection={"modality": "MR"})
    # A version a worker has started (no worker runs here: the test moves it on).
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="t",
                                            status=VersionStatus.RUNNING, studies_total=40)
    page = browser_page
    sign_in(page, live_server.url)
    page.goto(f"{live_server.url}/datasets/versions/{version.pk}/")
    page.evaluate("window.sameDocument = true")

    DatasetVersion.objects.filter(pk=version.pk).update(studies_done=17, files_written=51)
    page.locator('[data-field="studies_done"]', has_text="17").wait_for(timeout=10_000)
    assert page.locator("progress").evaluate("bar => bar.value") == 17
    assert page.locator('[data-field="files_written"]').inner_text() == "51"
    assert page.evaluate("window.sameDocument") is True  # updated in place, not reloaded

    DatasetVersion.objects.filter(pk=version.pk).update(
        studies_done=40, status=VersionStatus.FAILED, error="disk full")
    page.locator('[data-field="status"]', has_text="Failed").wait_for(timeout=10_000)
    page.wait_for_load_state()
    assert "disk full" in page.locator('[data-field="error"]').inner_text()
    assert Dataset.objects.count() == 1
