"""manage.py demo: a synthetic hospital with no real patient in it."""

from io import StringIO

import pydicom
import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from audit import ledger
from registry.demo import FAMILY, GIVEN
from registry.models import ImagingStudy, Patient


def test_demo_seeds_patients_studies_and_the_four_logins(db, data_dir):
    out = StringIO()
    call_command("demo", "--patients", "3", stdout=out)
    assert Patient.objects.count() == 3
    assert ImagingStudy.objects.filter(patient__mrn="DEMO00001").count() == 3
    text = out.getvalue()
    for username, password in [("patient", "demo-patient-pass"), ("staff", "demo-staff-pass"),
                               ("steward", "demo-steward-pass"),
                               ("auditor", "demo-auditor-pass")]:
        assert username in text and password in text
        client = Client()
        signed_in = client.post("/login/", {"username": username, "password": password})
        assert signed_in.status_code == 302, username
    demo_patient = Patient.objects.get(mrn="DEMO00001")
    assert demo_patient.user.username == "patient"
    from consent.selectors import patient_uses

    uses = list(patient_uses(demo_patient))
    assert [u.details["recipient"] for u in uses] == ["Riverside Clinic (second opinion)"]
    ledger.seal()
    assert ledger.verify().ok


def test_demo_files_carry_only_synthetic_people(db, data_dir):
    call_command("demo", "--patients", "4", stdout=StringIO())
    files = list((data_dir / "demo-dicom").rglob("*.dcm"))
    assert files
    for path in files:
        ds = pydicom.dcmread(path)
        family, given = str(ds.PatientName).split("^")
        assert family in FAMILY and given in GIVEN
        assert ds.PatientID.startswith("DEMO")
        names = [str(e.value) for e in ds.iterall() if e.VR == "PN" and e.value]
        assert names == [str(ds.PatientName)], path
        assert not any(e.tag.is_private for e in ds.iterall())


def test_demo_twice_keeps_the_first_hospital(db):
    call_command("demo", "--patients", "2", stdout=StringIO())
    out = StringIO()
    call_command("demo", "--patients", "5", stdout=out)
    assert "already seeded" in out.getvalue()
    assert Patient.objects.count() == 2


@pytest.mark.parametrize("count", ["0", "-3", "100001"])
def test_demo_refuses_a_nonsense_patient_count(db, count):
    with pytest.raises(CommandError, match="between 1 and 100000"):
        call_command("demo", "--patients", count, stdout=StringIO())
    assert Patient.objects.count() == 0
