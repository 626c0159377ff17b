"""The steward's pages: create (and refuse bad input), preview, run, see each study's fate,
download, see withdrawal notices; nobody but a steward gets in."""

import io
import zipfile

import pytest
from django.core import mail

from audit.models import AuditEvent
from consent.models import Purpose
from consent.selectors import current_form
from consent.services import consent_record
from datasets.models import Dataset, DatasetVersion, VersionStatus
from tests.clients import sign_in
from tests.datasets.helpers import STEWARD, make_dataset, run_export

GOOD = {"name": "Chest AI", "purpose": "ai-training", "recipient": "Acme AI Lab",
        "enforcement": "exclude", "modality": "CR", "deid_options": ["modified-dates"]}


def test_a_steward_creates_previews_runs_and_downloads(client, steward, hospital, data_dir,
                                                       django_capture_on_commit_callbacks):
    sign_in(client, steward)
    response = client.post("/datasets/new/", GOOD)
    dataset = Dataset.objects.get()
    assert response.status_code == 302 and response.url == f"/datasets/{dataset.pk}/"
    assert dataset.owner == steward and dataset.selection == {"modality": "CR"}

    preview = client.get(f"/datasets/{dataset.pk}/preview/").content.decode()
    assert "2 studies are selected" in preview
    assert "Would be included</th><td>1" in preview
    assert "no consent (default policy)</th><td>1" in preview
    assert not DatasetVersion.objects.exists()  # a preview writes nothing

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/datasets/{dataset.pk}/run/")
    version = DatasetVersion.objects.get()
    assert response.url == f"/datasets/versions/{version.pk}/"
    page = client.get(response.url).content.decode()
    assert "Complete" in page and "ann-0" in page and "ben-0" in page
    assert "no consent (default policy)" in page
    assert client.get(f"/datasets/versions/{version.pk}/progress/").json() == {
        "status": "complete", "studies_done": 2, "studies_total": 2, "files_written": 1,
        "bytes_written": DatasetVersion.objects.get().bytes_written, "percent": 100,
        "error": "", "finished": True}

    download = client.get(f"/datasets/versions/{version.pk}/download/")
    assert download["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).namelist()
    assert f"dataset-{dataset.pk}-v1/manifest.json" in names
    assert sum(name.endswith(".dcm") for name in names) == 1
    assert AuditEvent.objects.filter(action="export.downloaded").count() == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"enforcement": "log-only"}, "legal basis"),
    ({"modality": ""}, "select studies by UID or by a query"),
    ({"study_uids": "1.2.3\nnot-a-uid"}, "StudyInstanceUIDs"),
    ({"date_from": "2025-02-01", "date_to": "2025-01-01"}, "date_from is after date_to"),
    ({"min_age": "200"}, "less than or equal to 150"),
    ({"purpose": "astrology"}, "Select a valid choice"),
    ({"name": ""}, "This field is required"),
    ({"deid_options": ["keep-everything"]}, "Select a valid choice"),
])
def test_bad_input_is_explained_and_creates_nothing(client, steward, hospital, change,
                                                    message):
    sign_in(client, steward)
    response = client.post("/datasets/new/", {**GOOD, **change})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Dataset.objects.exists()


def test_the_dataset_page_shows_a_withdrawal_notice(client, steward, hospital, data_dir,
                                                    django_capture_on_commit_callbacks):
    dataset = make_dataset(steward, selection={"modality": "CR"})
    version = run_export(dataset, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        consent_record(patient=hospital["ann"], purpose=Purpose.objects.get(code="ai-training"),
                       decision="deny", actor=STEWARD, source="portal", form=current_form())
    held = version.studies.get(included=True)
    sign_in(client, steward)
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Consent withdrawn after delivery" in page
    assert held.pseudo_study_uid in page and "(owner emailed)" in page
    assert len(mail.outbox) == 1
    assert "<strong class=\"no\">1</strong>" in client.get("/datasets/").content.decode()


def test_a_version_not_complete_cannot_be_downloaded(client, steward, hospital):
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="x",
                                            status=VersionStatus.RUNNING)
    sign_in(client, steward)
    response = client.get(f"/datasets/versions/{version.pk}/download/", follow=True)
    assert "not complete (running)" in response.content.decode()


@pytest.mark.parametrize("url", ["/datasets/", "/datasets/new/", "/datasets/{d}/",
                                 "/datasets/{d}/preview/", "/datasets/versions/{v}/",
                                 "/datasets/versions/{v}/progress/",
                                 "/datasets/versions/{v}/download/"])
@pytest.mark.parametrize("persona", ["staff", "auditor", "patient", "outsider"])
def test_only_stewards_get_in(client, request, steward, hospital, url, persona):
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="x")
    user = request.getfixturevalue(persona)
    sign_in(client, user if persona != "patient" else user.user)
    target = url.format(d=dataset.pk, v=version.pk)
    assert client.get(target).status_code == 403
    client.logout()
    assert client.get(target).status_code == 302  # to the sign-in page
    assert client.post(f"/datasets/{dataset.pk}/run/").status_code == 302
    assert DatasetVersion.objects.count() == 1
