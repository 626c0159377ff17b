"""POST /api/v1/studies/ingest: uploaded DICOM files, one answer per file."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEvent
from registry.models import Instance, Patient
from tests.clients import sign_in

URL = "/api/v1/studies/ingest"


@pytest.fixture
def client_for():
    def make(user):
        client = APIClient()
        if user:
            client.force_authenticate(user)
        return client
    return make


def upload(client, *files):
    return client.post(URL, {"files": list(files)}, format="multipart")


def open_file(path):
    return open(path, "rb")


def test_staff_uploads_a_study_and_it_is_stored_and_registered(client_for, staff, corpus,
                                                               data_dir):
    response = upload(client_for(staff), open_file(corpus / "CT_small.dcm"))
    assert response.status_code == 201
    body = response.json()
    assert body["registered"] == 1
    assert body["files"][0]["file"] == "CT_small.dcm"
    assert body["files"][0]["status"] == "registered"
    instance = Instance.objects.get()
    assert instance.path.startswith(str(data_dir / "dicom"))
    with open(instance.path, "rb") as stored:
        assert stored.read() == (corpus / "CT_small.dcm").read_bytes()
    event = AuditEvent.objects.get(action="dicom.registered")
    assert event.actor_label == staff.username
    assert event.actor_role == "staff"
    assert event.details["source"] == "api"


def test_uploading_the_same_file_again_is_known_and_adds_nothing(client_for, steward, corpus):
    client = client_for(steward)
    upload(client, open_file(corpus / "CT_small.dcm"))
    response = upload(client, open_file(corpus / "CT_small.dcm"))
    assert response.status_code == 200
    assert response.json()["files"][0]["status"] == "known"
    assert Instance.objects.count() == 1


def test_each_file_gets_its_own_answer_and_bad_files_change_nothing(client_for, staff, corpus,
                                                                   data_dir, tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"this is not DICOM")
    response = upload(client_for(staff), open_file(junk),
                      open_file(corpus / "MR_truncated.dcm"),
                      open_file(corpus / "MR_small.dcm"))
    files = response.json()["files"]
    assert [f["status"] for f in files] == ["rejected", "rejected", "registered"]
    assert "not a DICOM file" in files[0]["reason"]
    assert "truncated" in files[1]["reason"]
    assert Instance.objects.count() == 1
    stored = [p for p in (data_dir / "dicom").rglob("*") if p.is_file()]
    assert len(stored) == 1
    leftovers = [p for p in (data_dir / "incoming").rglob("*") if p.is_file()]
    assert leftovers == []


def test_a_conflicting_upload_is_reported_and_its_file_not_kept(client_for, staff, corpus,
                                                               data_dir):
    client = client_for(staff)
    upload(client, open_file(corpus / "MR_small.dcm"))
    response = upload(client, open_file(corpus / "MR_small_bigendian.dcm"))
    assert response.json()["files"][0]["status"] == "conflict"
    assert len([p for p in (data_dir / "dicom").rglob("*") if p.is_file()]) == 1


def test_no_files_is_a_400_naming_the_field(client_for, staff):
    response = client_for(staff).post(URL, {}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "files"
    assert Patient.objects.count() == 0


def test_a_json_body_is_refused(client_for, staff):
    response = client_for(staff).post(URL, {"files": ["x"]}, format="json")
    assert response.status_code == 415
    assert "error" in response.json()


@pytest.mark.parametrize("persona", ["patient", "auditor", "outsider"])
def test_only_staff_and_stewards_may_upload(client_for, request, persona, corpus):
    user = request.getfixturevalue(persona)
    user = user.user if persona == "patient" else user
    response = upload(client_for(user), open_file(corpus / "CT_small.dcm"))
    assert response.status_code == 403
    assert Instance.objects.count() == 0


def test_anonymous_upload_is_refused(client_for, corpus, db):
    response = upload(client_for(None), open_file(corpus / "CT_small.dcm"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert Instance.objects.count() == 0


def test_session_uploads_need_the_csrf_token(staff, corpus):
    client = APIClient(enforce_csrf_checks=True)
    sign_in(client, staff)
    response = upload(client, open_file(corpus / "CT_small.dcm"))
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_a_file_over_the_upload_limit_is_refused_with_the_limit_and_not_kept(
        client_for, staff, corpus, data_dir, settings):
    small, large = corpus / "MR_small.dcm", corpus / "CT_small.dcm"
    settings.CONSENTRY_MAX_DICOM_UPLOAD_BYTES = (small.stat().st_size + large.stat().st_size) // 2
    assert small.stat().st_size < settings.CONSENTRY_MAX_DICOM_UPLOAD_BYTES < large.stat().st_size
    response = upload(client_for(staff), open_file(small), open_file(large))
    body = response.json()
    assert [f["status"] for f in body["files"]] == ["registered", "rejected"]
    assert "upload limit" in body["files"][1]["reason"]
    assert Instance.objects.count() == 1
    assert len(list((data_dir / "dicom").rglob("*.dcm"))) == 1
    assert not list((data_dir / "incoming").iterdir())
