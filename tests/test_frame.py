"""One page frame for everyone: navigation by role, styled error pages with a way back, a
help page with a contact point, and a yes that looks no easier than a no."""

import re

import pytest
from django.template.loader import render_to_string
from django.test import Client, override_settings

from tests.clients import sign_in
from tests.conftest import make_user


def nav_labels(html: str) -> list[str]:
    nav = re.search(r'<nav class="sections".*?</nav>', html, re.S)
    assert nav, "no section navigation on the page"
    return re.findall(r">([^<>]+)</a>", nav.group(0))


@pytest.mark.parametrize(("persona", "expected"), [
    ("patient", ["My choices", "Help"]),
    ("staff", ["Desk", "API tokens", "API docs", "Help"]),
    ("steward", ["Datasets", "API tokens", "API docs", "Help"]),
    ("auditor", ["Auditor", "API tokens", "API docs", "Help"]),
])
def test_navigation_offers_exactly_the_sections_the_role_may_open(request, persona, expected):
    person = request.getfixturevalue(persona)
    client = sign_in(Client(), getattr(person, "user", person))
    page = client.get("/help/").content.decode()
    assert nav_labels(page) == expected
    # Every offered link opens for this person: none answers 403 or 404.
    for url in re.findall(r'<nav class="sections".*?</nav>', page, re.S)[0].split('href="')[1:]:
        url = url.split('"')[0]
        assert client.get(url).status_code in (200, 302), url


def test_admin_without_a_role_is_told_what_they_are_and_offered_no_console(db):
    root = make_user("root")
    root.is_superuser = root.is_staff = True
    root.save()
    page = sign_in(Client(), root).get("/").content.decode()
    assert "no role yet" not in page
    assert "administrator" in page
    assert nav_labels(page) == ["All tokens", "Administration", "API docs", "Help"]


def test_not_found_page_is_styled_and_leads_back(patient):
    client = sign_in(Client(), patient.user)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "consentry.css" in page and "Page not found" in page
    assert 'href="/"' in page and 'href="/help/"' in page
    assert nav_labels(page) == ["My choices", "Help"]


def test_forbidden_page_is_styled_names_a_contact_and_leads_back(patient):
    client = sign_in(Client(), patient.user)
    response = client.get("/desk/")
    assert response.status_code == 403
    page = response.content.decode()
    assert "You cannot open this page" in page and "consentry.css" in page
    assert 'href="/"' in page and "mailto:" in page


def test_api_errors_stay_json_under_the_frame(staff):
    client = sign_in(Client(), staff)
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Not found."


def test_server_error_page_renders_without_a_request_and_leads_back():
    page = render_to_string("500.html")
    assert "Something went wrong" in page and 'href="/"' in page and "consentry.css" in page


@override_settings(CONSENTRY_HELP_CONTACT={
    "name": "the Records Office", "email": "records@h.example", "phone": "+44 20 7946 0000"})
def test_help_page_is_open_to_everyone_and_names_a_contact_point(db):
    response = Client().get("/help/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "the Records Office" in page
    assert 'href="mailto:records@h.example"' in page and 'href="tel:+44 20 7946 0000"' in page


def test_help_has_staff_notes_only_for_staff(patient, staff):
    assert "For staff" not in sign_in(Client(), patient.user).get("/help/").content.decode()
    assert "For staff" in sign_in(Client(), staff).get("/help/").content.decode()


def test_say_no_looks_the_same_as_say_yes(patient):
    from tests.consent.factories import make_record

    make_record(patient, "research", "permit")
    client = sign_in(Client(), patient.user)
    page = client.get(f"/portal/{patient.pk}/choices/").content.decode()
    buttons = re.findall(r'<button type="submit" name="decision" value="(permit|deny)"([^>]*)>'
                         r"(Say (?:yes|no))</button>", page)
    kinds = {label for _, _, label in buttons}
    assert kinds == {"Say yes", "Say no"}
    # Same markup apart from the words: no class makes one quieter than the other.
    assert {re.sub(r'aria-label="[^"]*"', "", attrs).strip() for _, attrs, _ in buttons} == {""}
