"""Limits: sign-in per address across usernames and per username, password resets per
address, API calls per token; each answers 429 with Retry-After. Counted in the shared
cache (Redis in the PostgreSQL run)."""

from django.test import Client

from audit.models import AuditEvent
from tests.clients import api_with_token


def attempt(username: str, password: str = "guess", address: str = "10.0.0.1"):
    return Client().post("/login/", {"username": username, "password": password},
                         REMOTE_ADDR=address)


def test_many_usernames_from_one_address_are_stopped(staff, settings):
    # A day's window: the limiter's windows are fixed, so a slow run crossing the boundary
    # of a short one would start counting afresh part-way through.
    settings.CONSENTRY_RATES = {**settings.CONSENTRY_RATES, "sign_in_address": "30/d"}
    answers = [attempt(f"user{n}").status_code for n in range(40)]
    assert answers[:30] == [200] * 30 and set(answers[30:]) == {429}
    blocked = attempt(staff.username, "pw-" + staff.username)
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) > 0
    assert b"Too many attempts" in blocked.content
    # Another address is not affected.
    assert attempt(staff.username, "pw-" + staff.username, "10.0.0.2").status_code == 302
    assert AuditEvent.objects.filter(action="login.failed", outcome="denied",
                                     reason="too many sign-in attempts").count() == 11


def test_one_username_from_many_addresses_is_stopped(staff, settings):
    settings.CONSENTRY_RATES = {**settings.CONSENTRY_RATES, "sign_in_username": "10/d"}
    answers = [attempt(staff.username, address=f"10.1.0.{n}").status_code for n in range(12)]
    assert answers[:10] == [200] * 10 and answers[10:] == [429, 429]
    assert attempt("someone-else", address="10.1.0.99").status_code == 200


def test_password_resets_are_limited_per_address(db, settings):
    settings.CONSENTRY_RATES = {**settings.CONSENTRY_RATES, "password_reset": "2/h"}
    client = Client()
    answers = [client.post("/password-reset/", {"email": "x@example.org"}).status_code
               for _ in range(3)]
    assert answers == [302, 302, 429]


def test_api_calls_are_limited_per_token(staff, settings):
    settings.CONSENTRY_RATES = {**settings.CONSENTRY_RATES, "api": "3/m"}
    busy, other = api_with_token(staff, "consent:read"), api_with_token(staff, "consent:read")
    answers = [busy.get("/api/v1/purposes").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = busy.post("/api/v1/consent-checks", {"purpose": "research",
                                                   "study_instance_uids": ["1.2.3"]},
                        format="json")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert "throttled" in limited.json()["error"]["message"]
    assert other.get("/api/v1/purposes").status_code == 200
