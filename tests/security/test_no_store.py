"""Pages and API answers for someone signed in, or for a token, carry personal data: the
browser and any proxy on the way must not keep them (a shared computer's back button after
signing out, a proxy's disk cache)."""

from django.test import Client
from django.urls import reverse

from tests.clients import api_with_token, signed_in


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_portal_pages_are_not_stored(patient):
    client = signed_in(patient.user)
    for name in ("portal-choices", "portal-history", "portal-scans", "portal-uses"):
        response = client.get(reverse(name, args=[patient.pk]))
        assert response.status_code == 200
        assert no_store(response), name


def test_the_auditors_console_and_its_csv_are_not_stored(auditor):
    client = signed_in(auditor)
    assert no_store(client.get(reverse("audit-events")))
    export = client.get(reverse("audit-export"), {
        "since": "2000-01-01 00:00", "until": "2100-01-01 00:00", "format": "csv"})
    assert export.status_code == 200 and no_store(export)


def test_api_answers_to_a_token_or_a_session_are_not_stored(staff, hospital):
    alice, _, _ = hospital
    token = api_with_token(staff, "consent:read")
    for path in ("/api/v1/patients", f"/api/v1/patients/{alice.pk}/consents",
                 f"/api/v1/fhir/Consent?patient={alice.pk}"):
        response = token.get(path)
        assert response.status_code == 200 and no_store(response), path
    assert no_store(signed_in(staff).get("/api/v1/patients"))


def test_refusals_are_not_stored_either(patient, other_patient):
    response = signed_in(patient.user).get(reverse("portal-choices", args=[other_patient.pk]))
    assert response.status_code == 404 and no_store(response)


def test_public_pages_keep_their_own_caching(db):
    assert not no_store(Client().get(reverse("help")))


def test_the_second_factor_steps_redirect_and_refusal_are_not_stored(staff):
    """A session that still owes its second factor is sent to the step (pages) or refused
    (API) by SecondFactorMiddleware, inside NoStoreMiddleware: those answers pass back
    through it and are not kept either."""
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("desk"))
    assert page.status_code == 302 and page["Location"].startswith(reverse("two-factor-setup"))
    assert no_store(page)
    api = client.get("/api/v1/patients")
    assert api.status_code == 403 and no_store(api)
