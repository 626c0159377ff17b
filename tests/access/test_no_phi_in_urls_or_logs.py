"""No PHI in URLs or logs. The main flows of every role run against the demo hospital while
every log record (Django's, Celery's, ours) is captured and every URL is recorded: the ones
requested (what a web server's access log writes: the request line with its query string,
and the Referer, which is one of our own URLs) and every link, form action and redirect our
pages hand out. No demo patient's name, MRN or birth date may appear in any of them."""

import logging
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from access.tokens import api_token_create
from audit.ledger import Actor
from datasets.models import Dataset
from registry.models import ImagingStudy, Patient
from tests.clients import demo_code

pytestmark = pytest.mark.usefixtures("inline_celery")

URLS: list[str] = []


class Recording:
    """Records each URL requested and each URL a response hands out."""

    def request(self, **request):
        URLS.append(request["PATH_INFO"] + "?" + request.get("QUERY_STRING", ""))
        response = super().request(**request)
        if response.has_header("Location"):
            URLS.append(response["Location"])
        if "html" in response.get("Content-Type", ""):
            URLS.extend(re.findall(r'(?:href|action|src)="([^"]*)"', response.content.decode()))
        return response


class RecordingClient(Recording, Client):
    pass


class RecordingApiClient(Recording, APIClient):
    pass


def sign_in(username: str, password: str) -> Client:
    client = RecordingClient()
    assert client.post("/login/", {"username": username, "password": password}).status_code \
        == 302
    if username != "patient":
        assert client.post("/login/verify/", {"code": demo_code(username)}).status_code == 302
    return client


def phi() -> set[str]:
    values = set()
    for patient in Patient.objects.all():
        family, _, given = patient.name.partition("^")
        values |= {patient.mrn, patient.name, family, f"{given} {family}"}
        if patient.birth_date:
            values |= {patient.birth_date.isoformat(), f"{patient.birth_date:%Y%m%d}"}
    return {v for v in values if len(v) >= 4}


def test_the_main_flows_put_no_phi_in_urls_or_logs(db, data_dir, caplog,
                                                   django_capture_on_commit_callbacks):
    caplog.set_level(logging.DEBUG)
    URLS.clear()
    call_command("demo", "--patients", "4", stdout=StringIO())
    call_command("demo_exports", stdout=StringIO())
    other = min(Patient.objects.exclude(user__username="patient"), key=lambda p: p.mrn)
    study = ImagingStudy.objects.filter(patient=other).first()
    family = other.name.split("^")[0]

    staff = sign_in("staff", "demo-staff-pass")
    staff.post("/desk/", {"q": other.mrn}, follow=True)
    staff.post("/desk/", {"q": family}, follow=True)
    staff.get(f"/desk/patients/{other.pk}/")
    with django_capture_on_commit_callbacks(execute=True):
        staff.post(f"/desk/patients/{other.pk}/consent/", {
            "purpose": "research", "decision": "deny", "scope_kind": "all",
            "source": "paper", "form_version": 1}, follow=True)

    _, secret = api_token_create(owner=staff_user(), name="pacs",
                                 scopes=["consent:read"], actor=Actor(label="t"))
    api = RecordingApiClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    api.post("/api/v1/patients/search", {"mrn": other.mrn}, format="json")
    api.post("/api/v1/studies/search", {"mrn": other.mrn}, format="json")
    api.post("/api/v1/consent-checks", {"purpose": "ai-training", "patient_mrn": other.mrn},
             format="json")
    api.post("/api/v1/consent-checks", {"purpose": "ai-training",
                                        "study_instance_uids": [study.study_uid]},
             format="json")

    auditor = sign_in("auditor", "demo-auditor-pass")
    auditor.post("/audit/events/", {"patient_mrn": other.mrn}, follow=True)
    auditor.post("/audit/disclosures/", {"mrn": other.mrn})
    auditor.post("/audit/disclosures/", {"mrn": other.mrn, "print": "1"})

    steward = sign_in("steward", "demo-steward-pass")
    dataset = Dataset.objects.get()
    steward.get(f"/datasets/{dataset.pk}/preview/")
    with django_capture_on_commit_callbacks(execute=True):
        version = steward.post(f"/datasets/{dataset.pk}/run/", follow=True)
    assert version.status_code == 200

    patient = sign_in("patient", "demo-patient-pass")
    for page in ("choices", "scans", "history", "uses"):
        patient.get(f"/portal/{Patient.objects.get(user__username='patient').pk}/{page}/")
    Client().post("/login/", {"username": other.mrn, "password": "wrong"})  # a typo'd MRN

    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records)
    assert len(URLS) > 100 and logged
    for value in sorted(phi()):
        assert value not in logged, f"{value!r} in the logs"
        leaked = [url for url in URLS if value in url or value.replace(" ", "+") in url
                  or value.replace(" ", "%20") in url]
        assert not leaked, (value, leaked)


def staff_user():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="staff")
