"""Two-step sign-in in a real browser: a new staff member signs in with a password, is sent
to set up an authenticator, scans nothing but types the shown key into an "app" (computed
here), keeps the recovery codes, reaches the desk; next time the code is asked for, and a
recovery code works when the phone is away."""

import time
from base64 import b32decode

from django_otp.oath import TOTP

from tests.conftest import make_user
from tests.e2e.conftest import needs_chromium, shot

pytestmark = needs_chromium


def app_code(key_base32: str, steps_ahead: int = 0) -> str:
    totp = TOTP(b32decode(key_base32))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def password_step(page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("pw-" + username)
    page.get_by_role("button", name="Sign in").click()


def test_staff_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(committed_db,
                                                                       live_server,
                                                                       browser_page):
    make_user("nina", "staff")
    page, base = browser_page, live_server.url

    password_step(page, base, "nina")
    page.wait_for_url("**/account/two-factor/**")
    assert page.get_by_role("heading", name="Set up two-step sign-in").is_visible()
    assert page.locator(".qr svg").count() == 1
    key = page.locator("#totp-key").inner_text()
    shot(page, "two-factor-setup")
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    assert page.get_by_role("alert").inner_text().startswith("That code is not right")
    page.get_by_label("Code from the app").fill(app_code(key))
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    assert page.get_by_role("heading", name="Two-step sign-in is on").is_visible()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(f"{base}/")
    page.get_by_role("link", name="Staff desk: find a patient").click()
    page.wait_for_url("**/desk/")

    page.get_by_role("button", name="Sign out").click()
    password_step(page, base, "nina")
    page.wait_for_url("**/login/verify/**")
    page.get_by_label("Code").fill(app_code(key, 1))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/")
    assert page.get_by_role("link", name="Staff desk: find a patient").is_visible()

    page.get_by_role("button", name="Sign out").click()
    password_step(page, base, "nina")
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(f"{base}/")
    assert "9 are left" in page.content()
