"""The demo's export story: the steward previews and runs the AI-training export, sees what
was left out and why, the files verify; the demo patient says no and a notice appears."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from datasets.exports import version_dir
from datasets.models import Dataset, DatasetVersion, VersionStatus
from registry.models import Patient
from tests.clients import demo_sign_in as signed_in


def test_the_demo_export_story(db, data_dir, django_capture_on_commit_callbacks):
    call_command("demo", "--patients", "8", stdout=StringIO())
    out = StringIO()
    call_command("demo_exports", stdout=out)
    assert "Datasets" in out.getvalue()
    dataset = Dataset.objects.get()

    steward = signed_in("steward", "demo-steward-pass")
    assert dataset.name in steward.get("/datasets/").content.decode()
    preview = steward.get(f"/datasets/{dataset.pk}/preview/").content.decode()
    assert "Would be included" in preview and "no consent" in preview
    with django_capture_on_commit_callbacks(execute=True):
        version_url = steward.post(f"/datasets/{dataset.pk}/run/").url
    version = DatasetVersion.objects.get()
    assert version.status == VersionStatus.COMPLETE
    page = steward.get(version_url).content.decode()
    assert "Left out, by reason" in page and "3D head study" in page
    call_command("verify_export", str(version_dir(version)), stdout=StringIO())

    demo_patient = Patient.objects.get(user__username="patient")
    assert version.studies.filter(study__patient=demo_patient, included=True).exists()
    patient = signed_in("patient", "demo-patient-pass")
    with django_capture_on_commit_callbacks(execute=True):
        response = patient.post(f"/portal/{demo_patient.pk}/choices/change/",
                                {"purpose": "ai-training", "decision": "deny",
                                 "scope_kind": "all", "confirmed": "yes"})
    assert response.status_code == 302
    page = steward.get(f"/datasets/{dataset.pk}/").content.decode()
    assert "Consent withdrawn after delivery" in page

    call_command("demo_exports", stdout=StringIO())  # again: keeps the one dataset
    assert Dataset.objects.count() == 1


def test_demo_exports_needs_the_demo_first(db):
    with pytest.raises(CommandError, match=r"manage\.py demo"):
        call_command("demo_exports", stdout=StringIO())
