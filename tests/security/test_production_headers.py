"""Production settings (DATABASE_URL set) send the security headers and secure cookies, on
pages and on the API alike. The settings are read in a fresh interpreter with a production
environment, then applied to requests here."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from tests.clients import api_with_token

NAMES = ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY",
         "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SAMESITE", "SECURE_HSTS_SECONDS",
         "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_SSL_REDIRECT", "SECURE_CONTENT_TYPE_NOSNIFF",
         "X_FRAME_OPTIONS", "SECURE_REFERRER_POLICY", "DEBUG")


@pytest.fixture(scope="module")
def production() -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS")}
    env.update(DATABASE_URL="postgres://nobody@127.0.0.1:1/none", SECRET_KEY="s" * 60,
               DJANGO_SETTINGS_MODULE="config.settings",
               CONSENTRY_IDENTIFIER_KEYS="Y29uc2VudHJ5LXRlc3Qtb25seS1pZGVudGlmaWVyISE=",
               CONSENTRY_BLIND_INDEX_KEY="ci-only-blind-index-key-not-for-production")
    script = ("import json, django; from django.conf import settings; django.setup(); "
              f"print(json.dumps({{n: getattr(settings, n) for n in {NAMES!r}}}))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, check=True, cwd=Path(__file__).parents[2])
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_production_settings_are_strict(production):
    assert production["DEBUG"] is False
    assert production["SESSION_COOKIE_SECURE"] and production["CSRF_COOKIE_SECURE"]
    assert production["SESSION_COOKIE_HTTPONLY"]
    assert production["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert production["CSRF_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert production["SECURE_HSTS_SECONDS"] >= 31536000
    assert production["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and production["SECURE_SSL_REDIRECT"]
    assert production["SECURE_CONTENT_TYPE_NOSNIFF"]
    assert production["X_FRAME_OPTIONS"] == "DENY"
    assert production["SECURE_REFERRER_POLICY"] in ("same-origin", "no-referrer",
                                                     "strict-origin-when-cross-origin")


def assert_headers(response) -> None:
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"]
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1] \
        .split(";")[0]


def test_pages_and_api_carry_the_headers_over_https(production, settings, staff, patient):
    for name in NAMES:
        setattr(settings, name, production[name])
    client = Client()
    login = client.get("/login/", secure=True)
    assert_headers(login)
    csrf = login.cookies["csrftoken"]
    assert csrf["secure"] and csrf["samesite"] == "Lax"
    signed = client.post("/login/", {"username": "alice", "password": "pw-alice"}, secure=True)
    assert signed.status_code == 302
    session = signed.cookies["sessionid"]
    assert session["secure"] and session["httponly"] and session["samesite"] == "Lax"
    assert_headers(client.get(f"/portal/{patient.pk}/choices/", secure=True))
    api = api_with_token(staff, "consent:read").get("/api/v1/patients", secure=True)
    assert api.status_code == 200
    assert_headers(api)
    assert "no-store" in api["Cache-Control"]


def test_plain_http_is_sent_to_https(production, settings, db):
    settings.SECURE_SSL_REDIRECT = production["SECURE_SSL_REDIRECT"]
    response = Client().get("/login/")
    assert response.status_code == 301 and response["Location"].startswith("https://")
