"""Two-step sign-in (django-otp): required for privileged roles and admins, offered to
patients; nothing but the steps themselves is reachable before the second factor; API
tokens are unaffected; every step is in the ledger."""

import time
from base64 import b32decode
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.clients import api_with_token
from tests.conftest import make_user


def code_for(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """What the person's authenticator app shows (a later step: codes are single-use)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():06d}"


def password_step(user) -> Client:
    client = Client()
    response = client.post("/login/", {"username": user.username,
                                       "password": "pw-" + user.username})
    assert response.status_code == 302
    return client


def enrol(client) -> tuple[TOTPDevice, list[str]]:
    page = client.get("/account/two-factor/")
    assert page.status_code == 200 and b"<svg" in page.content
    assert not TOTPDevice.objects.exists()  # looking at the page saves nothing
    key = page.content.decode().split('<code id="totp-key">')[1].split("</code>")[0]
    app = TOTPDevice(key=b32decode(key).hex())  # what the person's app now holds
    done = client.post("/account/two-factor/", {"code": code_for(app), "next": "/desk/"})
    assert done.status_code == 200
    codes = [c.split("</code>")[0] for c in
             done.content.decode().split('id="recovery-codes"')[1].split("<code>")[1:]]
    return TOTPDevice.objects.get(confirmed=True), codes


@pytest.mark.parametrize("persona", ["staff", "steward", "auditor"])
def test_a_privileged_password_alone_reaches_nothing(request, persona, patient):
    user = request.getfixturevalue(persona)
    client = password_step(user)
    for path in ["/desk/", "/datasets/", "/audit/", f"/desk/patients/{patient.pk}/", "/"]:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/account/two-factor/?next=")
    api = client.get("/api/v1/studies")
    assert api.status_code == 403 and "second factor" in api.json()["error"]["message"]
    assert not AuditEvent.objects.filter(action="phi.viewed").exists()


def test_staff_set_up_an_authenticator_then_need_it_at_every_sign_in(staff):
    client = password_step(staff)
    device, codes = enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.get("/desk/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.enrolled",
                                     actor_user_id=staff.pk).count() == 1

    again = password_step(staff)
    assert again.get("/desk/")["Location"].startswith("/login/verify/?next=")
    wrong = again.post("/login/verify/", {"code": "000000", "next": "/desk/"})
    assert wrong.status_code == 200 and b"not right" in wrong.content
    # A failure throttles the device: even the right code waits for the delay to pass.
    throttled = again.post("/login/verify/", {"code": code_for(device, 1), "next": "/desk/"})
    assert throttled.status_code == 200
    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(minutes=1))
    right = again.post("/login/verify/", {"code": code_for(device, 1), "next": "/desk/"})
    assert right.status_code == 302 and right["Location"] == "/desk/"
    assert again.get("/desk/").status_code == 200
    outcomes = list(AuditEvent.objects.filter(action="login.second_factor")
                    .order_by("id").values_list("outcome", flat=True))
    assert outcomes == ["failure", "failure", "success"]


def test_a_recovery_code_works_once(staff):
    _, codes = enrol(password_step(staff))
    first = password_step(staff)
    assert first.post("/login/verify/", {"code": codes[0]}).status_code == 302
    assert first.get("/desk/").status_code == 200
    second = password_step(staff)
    reused = second.post("/login/verify/", {"code": codes[0]})
    assert reused.status_code == 200 and b"used already" in reused.content
    assert second.get("/desk/").status_code == 302


def test_a_wrong_first_code_does_not_turn_it_on(staff):
    client = password_step(staff)
    client.get("/account/two-factor/")
    response = client.post("/account/two-factor/", {"code": "12345x"})
    assert response.status_code == 200 and b"not right" in response.content
    assert not TOTPDevice.objects.filter(confirmed=True).exists()
    assert client.get("/desk/").status_code == 302


def test_someone_with_an_authenticator_cannot_replace_it_without_passing_it(staff):
    enrol(password_step(staff))
    thief = password_step(staff)  # knows the password, not the phone
    response = thief.get("/account/two-factor/")
    assert response.status_code == 302 and response["Location"] == "/login/verify/"
    assert TOTPDevice.objects.filter(confirmed=True).count() == 1


def test_patients_are_offered_it_and_then_use_it(patient):
    client = password_step(patient.user)
    assert client.get("/portal/", follow=True).status_code == 200  # not required
    enrol(client)
    again = password_step(patient.user)
    assert again.get("/portal/")["Location"].startswith("/login/verify/")


def test_an_admin_signs_in_through_the_same_steps(db):
    admin = make_user("root")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    assert Client().get("/admin/login/?next=/admin/")["Location"] == "/login/?next=/admin/"
    client = password_step(admin)
    assert client.get("/admin/")["Location"].startswith("/account/two-factor/")


def test_api_tokens_need_no_second_factor(staff):
    assert api_with_token(staff, "consent:read").get("/api/v1/studies").status_code == 200


def test_a_privileged_session_expires_after_half_an_hour_idle(staff, patient, settings):
    assert settings.CONSENTRY_PRIVILEGED_IDLE_SECONDS == 1800
    client = password_step(staff)
    client.get("/")
    assert client.session.get_expiry_age() == 1800
    patients = password_step(patient.user)
    patients.get("/portal/")
    assert patients.session.get_expiry_age() == settings.SESSION_COOKIE_AGE > 1800
