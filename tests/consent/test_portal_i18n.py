"""The patient pages are ready for translation: Spanish is the proof. A browser asking for
Spanish gets it; any language without a translation gets English."""

from django.urls import reverse

from tests.clients import signed_in as client_for


def choices(patient, language: str | None) -> str:
    headers = {"HTTP_ACCEPT_LANGUAGE": language} if language else {}
    return client_for(patient.user).get(reverse("portal-choices", args=[patient.pk]),
                                        **headers).content.decode()


def test_a_spanish_browser_reads_the_portal_in_spanish(patient):
    page = choices(patient, "es-ES,es;q=0.9")
    assert '<html lang="es">' in page
    assert "<h1>Mis decisiones</h1>" in page and "Quién usó mis datos" in page
    assert ">Decir sí</button>" in page or ">Decir no</button>" in page
    assert "Ayuda y contacto" in page


def test_english_is_the_default_and_the_fallback(patient):
    for language in (None, "fr-FR,fr;q=0.9", "en-GB"):
        page = choices(patient, language)
        assert "<h1>My choices</h1>" in page and '<html lang="en">' in page
