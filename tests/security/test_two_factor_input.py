"""Second-factor codes that look like digits to str.isdigit() but are no number."""

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent


@pytest.mark.parametrize("code", ["²²²²²²", "①②③④⑤⑥"])
def test_setting_up_with_a_superscript_code_is_a_form_error(patient, code):
    client = Client()
    client.force_login(patient.user)
    assert client.get("/account/two-factor/").status_code == 200
    events = AuditEvent.objects.count()
    response = client.post("/account/two-factor/", {"code": code})
    assert response.status_code == 200
    assert "That code is not right" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=patient.user).exists()
    assert AuditEvent.objects.count() == events
