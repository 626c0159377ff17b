"""manage.py demo: a synthetic hospital with no real patient in it."""

from io import StringIO

import pydicom
import pytest
from django.core.management import CommandError, call_command
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit import ledger
from consent.management.commands.demo import demo_totp_secret
from registry.demo import FAMILY, GIVEN
from registry.identifiers import mrn_digest
from registry.models import ImagingStudy, Patient
from tests.clients import demo_sign_in


def test_demo_seeds_patients_studies_and_a_login_for_every_role(db, data_dir):
    out = StringIO()
    call_command("demo", "--patients", "3", stdout=out)
    assert Patient.objects.count() == 3
    assert ImagingStudy.objects.filter(patient__mrn_index=mrn_digest("DEMO00001")).count() == 3
    text = out.getvalue()
    assert demo_totp_secret() in text and "demo_code staff" in text
    for username, password, home in [
            ("patient", "demo-patient-pass", "/portal/"), ("staff", "demo-staff-pass", "/desk/"),
            ("steward", "demo-steward-pass", "/datasets/"),
            ("auditor", "demo-auditor-pass", "/audit/"),
            ("privacy", "demo-privacy-pass", "/"), ("admin", "demo-admin-pass", "/admin/")]:
        assert username in text and password in text
        client = demo_sign_in(username, password)
        assert client.get(home, follow=True).status_code == 200, username
        assert not client.get(home, follow=True).redirect_chain or home == "/portal/", username


def test_demo_code_prints_the_current_code_only_for_demo_accounts(db, data_dir, settings):
    call_command("demo", "--patients", "1", stdout=StringIO())
    settings.PRODUCTION = False
    out = StringIO()
    call_command("demo_code", "staff", stdout=out)
    device = TOTPDevice.objects.get(user__username="staff")
    app = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    assert app.verify(int(out.getvalue()), tolerance=1)  # the code an app shows around now
    with pytest.raises(CommandError, match="not a demo account"):
        call_command("demo_code", "patient")
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="embedded demo"):
        call_command("demo_code", "staff")
    demo_patient = Patient.objects.get(mrn_index=mrn_digest("DEMO00001"))
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
