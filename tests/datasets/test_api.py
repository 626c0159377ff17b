"""datasets and exports in /api/v1: the export scope, the whole flow from a token, a 400
naming the field for every broken payload (nothing written), 409 for a download too early."""

import io
import zipfile

import pytest
from django.core.management import call_command

from access.models import TokenScope
from access.tokens import api_token_create
from audit.ledger import Actor
from audit.models import AuditEvent
from datasets.models import Dataset, DatasetVersion, VersionStatus
from tests.clients import sign_in
from tests.datasets.helpers import make_dataset

GOOD = {"name": "Chest AI", "purpose": "ai-training", "recipient": "Acme AI Lab",
        "selection": {"modality": "CR"}}


def bearer(owner, scopes):
    _, secret = api_token_create(owner=owner, name="pipeline", scopes=scopes,
                                 actor=Actor(label="admin"))
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}


def test_a_system_with_the_export_scope_runs_an_export_end_to_end(
        client, steward, hospital, data_dir, tmp_path, django_capture_on_commit_callbacks):
    auth = bearer(steward, [TokenScope.EXPORT])
    created = client.post("/api/v1/datasets", GOOD, content_type="application/json", **auth)
    assert created.status_code == 201, created.content
    dataset_id = created.json()["id"]
    assert created.json()["owner"] == steward.username

    preview = client.get(f"/api/v1/datasets/{dataset_id}/preview", **auth).json()
    assert preview == {"selected": 2, "included": 1, "pixel_checks": 0,
                       "excluded": {"no consent (default policy)": 1}}

    with django_capture_on_commit_callbacks(execute=True):
        queued = client.post(f"/api/v1/datasets/{dataset_id}/exports", **auth)
    assert queued.status_code == 202
    export = client.get(f"/api/v1/exports/{queued.json()['id']}", **auth).json()
    assert export["status"] == "complete" and export["percent"] == 100
    assert export["studies_done"] == export["studies_total"] == 2
    assert export["excluded_by_reason"] == {"no consent (default policy)": 1}
    assert client.get(f"/api/v1/datasets/{dataset_id}",
                      **auth).json()["versions"][0]["number"] == 1

    download = client.get(f"/api/v1/exports/{export['id']}/download", **auth)
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content))).extractall(tmp_path)
    call_command("verify_export", str(tmp_path / f"dataset-{dataset_id}-v1"))
    event = AuditEvent.objects.get(action="export.downloaded")
    assert event.api_token and event.dataset_ref == str(dataset_id)


@pytest.mark.parametrize(("change", "field"), [
    ({"name": ""}, "name"),
    ({"purpose": "astrology"}, "purpose"),
    ({"recipient": None}, "recipient"),
    ({"enforcement": "sometimes"}, "enforcement"),
    ({"enforcement": "log-only"}, "irb_waiver"),
    ({"selection": []}, "selection"),
    ({"selection": {}}, "selection"),
    ({"selection": {"colour": "red"}}, "selection"),
    ({"selection": {"modality": "CR", "study_uids": ["1.2"]}}, "selection"),
    ({"selection": {"study_uids": "1.2.3"}}, "selection"),
    ({"selection": {"date_from": "yesterday"}}, "selection"),
    ({"selection": {"min_age": 60, "max_age": 20}}, "selection"),
    ({"selection": {"min_age": "sixty"}}, "selection"),
    ({"deid_options": ["keep-everything"]}, "deid_options.0"),  # the first bad item
    ({"name": "x" * 201}, "name"),
])
def test_broken_payloads_are_refused_naming_the_field(client, steward, hospital, change,
                                                      field):
    sign_in(client, steward)
    response = client.post("/api/v1/datasets", {**GOOD, **change},
                           content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == field
    assert not Dataset.objects.exists()
    assert not AuditEvent.objects.filter(action="dataset.created").exists()


def test_without_the_export_scope_or_the_steward_role_nothing_happens(client, steward, staff,
                                                                       hospital):
    dataset = make_dataset(steward)
    reader = bearer(steward, [TokenScope.CONSENT_READ, TokenScope.INGEST])
    assert client.get("/api/v1/datasets", **reader).status_code == 403
    assert client.post(f"/api/v1/datasets/{dataset.pk}/exports", **reader).status_code == 403
    sign_in(client, staff)
    assert client.get(f"/api/v1/datasets/{dataset.pk}/preview").status_code == 403
    assert client.post("/api/v1/datasets", GOOD,
                       content_type="application/json").status_code == 403
    assert not DatasetVersion.objects.exists() and Dataset.objects.count() == 1


def test_a_download_before_the_version_is_complete_is_a_conflict(client, steward, hospital):
    dataset = make_dataset(steward)
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="x",
                                            status=VersionStatus.QUEUED)
    sign_in(client, steward)
    response = client.get(f"/api/v1/exports/{version.pk}/download")
    assert response.status_code == 409
    assert "not complete" in response.json()["error"]["message"]
    assert client.get("/api/v1/exports/999999").status_code == 404
    assert client.post("/api/v1/datasets/999999/exports").status_code == 404
