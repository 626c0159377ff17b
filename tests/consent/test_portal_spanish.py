"""Every patient page reads in Spanish for a Spanish browser: no sentence we marked for
translation is left in English, the reasons built in Python included; English reads as it
did. The English sentences looked for are read from the committed catalogue itself, so a
newly marked sentence without its translation fails here."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from audit import ledger
from audit.ledger import Actor
from consent.models import ConsentRecord
from consent.wording import scan_name, written_date
from registry.models import ImagingStudy
from tests.clients import signed_in as client_for
from tests.consent.factories import make_record, make_study

SPANISH = {"HTTP_ACCEPT_LANGUAGE": "es-ES,es;q=0.9"}
ENGLISH = {"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}


def visible(html: str) -> str:
    """The words a person reads in the page's main part (tags and attributes left out).
    A consent form's own text is left out: it is shown in the language it was written in."""
    body = re.sub(r'<div class="consent-text">.*?</div>', "", html.split("<main", 1)[1],
                  flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def catalogue() -> dict[str, str]:
    """The Spanish catalogue's msgid -> msgstr (first form of plurals), read plainly."""
    text = (Path(settings.BASE_DIR) / "locale/es/LC_MESSAGES/django.po").read_text()
    entries = {}
    for block in text.split("\n\n"):
        strings: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            match = re.match(r'^(msgid|msgstr(?:\[0\])?|msgid_plural|msgstr\[\d\]|msgctxt) "(.*)"$',
                             line)
            if match:
                key = match.group(1)
                strings[key] = match.group(2)
            elif line.startswith('"') and key:
                strings[key] += line[1:-1]
        msgid = strings.get("msgid", "").replace('\\"', '"').replace("\\n", "\n")
        msgstr = strings.get("msgstr", strings.get("msgstr[0]", ""))
        if msgid:
            entries[msgid] = msgstr
    return entries


def english_fragments() -> set[str]:
    """The fixed English words of each marked sentence, as a reader sees them: tags taken
    out, split where a name, date or number goes in. Short fragments ("Use", "Why") could
    be part of a purpose's own name, so only those of three words or more are kept."""
    fragments = set()
    for msgid in catalogue():
        words = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", msgid))
        for part in re.split(r"%\(\w+\)[sd]", words):
            part = part.strip(" ,.;:()—")
            if len(part.split()) >= 3:
                fragments.add(part)
    return fragments


def untranslated(words: str) -> list[str]:
    return sorted(f for f in english_fragments() if f in words)


def test_the_catalogue_translates_every_marked_sentence():
    missing = [msgid for msgid, msgstr in catalogue().items() if not msgstr]
    assert missing == []
    assert len(english_fragments()) > 60  # the parse found the sentences, not nothing


@pytest.fixture
def head_ct(patient):
    study = make_study(patient, ("CT", "HEAD"))
    ImagingStudy.objects.filter(pk=study.pk).update(
        description="CT HEAD WITHOUT CONTRAST", study_date="2026-03-02", instance_count=3)
    study.refresh_from_db()
    return study


@pytest.fixture
def history(patient, head_ct):
    """A yes to research for everything, a no to AI training for the head CT, and uses of
    every kind the "Who used my data" page words differently."""
    make_record(patient, "research", "permit")
    make_record(patient, "ai-training", "deny", scope_kind="study",
                scope_value=head_ct.study_uid)
    actor = Actor(label="export")
    ledger.record(action="export.included", actor=actor, patient_ref=patient.pk,
                  study_uid=head_ct.study_uid, dataset_ref=7, purpose_code="research",
                  legal_basis="", details={"recipient": "Acme Imaging Lab", "version": 1})
    ledger.record(action="export.violation", actor=actor, patient_ref=patient.pk,
                  study_uid=head_ct.study_uid, dataset_ref=8, purpose_code="research",
                  legal_basis="IRB waiver W-1", details={"recipient": "City University"})
    ledger.record(action="export.delivered", actor=actor, patient_ref=patient.pk,
                  dataset_ref=7, purpose_code="research", legal_basis="",
                  details={"recipient": "Acme Imaging Lab"})
    ledger.record(action="dataset.withdrawal_notice", actor=actor, patient_ref=patient.pk,
                  dataset_ref=7, purpose_code="research", legal_basis="",
                  details={"recipient": "Acme Imaging Lab"})
    return head_ct


def pages(patient, study) -> dict[str, str]:
    form_id = ConsentRecord.objects.filter(patient=patient).first().form_id
    return {
        "choices": reverse("portal-choices", args=[patient.pk]),
        "scans": reverse("portal-scans", args=[patient.pk]),
        "scan": reverse("portal-scan", args=[patient.pk, study.pk]),
        "history": reverse("portal-history", args=[patient.pk]),
        "consent text": reverse("portal-consent-text", args=[patient.pk, form_id]),
        "uses": reverse("portal-uses", args=[patient.pk]),
        "receipt": reverse("portal-receipt", args=[patient.pk]),
    }


# A few key sentences per page, in each language: the proof that the page was translated
# and that English still reads exactly as before.
KEY = {
    "choices": (["Make an exception for one scan, a kind of scan or a part of the body",
                 "to training AI tools for your scan “CT head without contrast”"],
                ["Hacer una excepción para una prueba, un tipo de prueba o una parte del cuerpo",
                 "a training AI tools para su prueba «CT head without contrast»"]),
    "scans": (["What each of your scans may be used for, today", "2 March 2026",
               "You said no to training AI tools for this scan"],
              ["Para qué puede usarse hoy cada una de sus pruebas", "2 de marzo de 2026",
               "Usted dijo no a training AI tools para esta prueba"]),
    "scan": (["3 images", "Say yes for this scan",
              "You said yes to medical research for all your scans on"],
             ["3 imágenes", "Decir sí para esta prueba",
              "Usted dijo sí a medical research para todas sus pruebas el"]),
    "history": (["History of your choices", "recorded for you by the hospital",
                 "Read the text you chose under (version 1)"],
                ["Historial de sus decisiones", "registrada para usted por el hospital",
                 "Leer el texto con el que decidió (versión 1)"]),
    "consent text": (["This is the text in use today.", "Back to the history of your choices"],
                     ["Este es el texto en uso hoy.", "Volver al historial de sus decisiones"]),
    "uses": (["your scan “CT head without contrast” was shared with Acme Imaging Lab for "
              "medical research, because you said yes",
              "without your yes, under a research approval (IRB waiver W-1)",
              "a set of scans that included yours was sent to Acme Imaging Lab",
              "because you said no, Acme Imaging Lab was told to stop using your scans"],
             ["su prueba «CT head without contrast» se compartió con Acme Imaging Lab para "
              "medical research, porque usted dijo sí",
              "sin su sí, bajo una aprobación de investigación (IRB waiver W-1)",
              "se envió a Acme Imaging Lab un conjunto de pruebas que incluía las suyas",
              "como usted dijo no, se pidió a Acme Imaging Lab que dejara de usar sus pruebas"]),
    "receipt": (["Choices about the use of my scans", "Print or save as PDF",
                 "No to training AI tools for your scan “CT head without contrast” (since"],
                ["Decisiones sobre el uso de mis pruebas de imagen", "Imprimir o guardar como PDF",
                 "No a training AI tools para su prueba «CT head without contrast» (desde el"]),
}


@pytest.mark.parametrize("page", list(KEY))
def test_each_patient_page_reads_in_spanish_with_no_marked_english_left(patient, history,
                                                                        page):
    client = client_for(patient.user)
    words = visible(client.get(pages(patient, history)[page], **SPANISH).content.decode())
    for sentence in KEY[page][1]:
        assert sentence in words
    assert untranslated(words) == []


@pytest.mark.parametrize("page", list(KEY))
def test_english_still_reads_the_same(patient, history, page):
    client = client_for(patient.user)
    words = visible(client.get(pages(patient, history)[page], **ENGLISH).content.decode())
    for sentence in KEY[page][0]:
        assert sentence in words
    # The check above is not blind: the English page is full of the fragments it looks for.
    assert untranslated(words)


def test_a_change_confirmed_and_saved_reads_in_spanish(patient, head_ct):
    client = client_for(patient.user)
    change = {"purpose": "ai-training", "decision": "deny", "scope_kind": "study",
              "scope_value": head_ct.study_uid}
    confirm = visible(client.post(reverse("portal-change", args=[patient.pk]), change,
                                  **SPANISH).content.decode())
    assert "Está diciendo no a training AI tools para su prueba «CT head without contrast» " \
           "del 2 de marzo de 2026" in confirm
    assert "Esto se aplica a 1 de sus pruebas" in confirm
    assert untranslated(confirm) == []
    saved = visible(client.post(reverse("portal-change", args=[patient.pk]),
                                {**change, "confirmed": "yes"}, follow=True,
                                **SPANISH).content.decode())
    assert "Guardado: «No» a training AI tools" in saved
    assert "Se avisará a quien ya tenga estas pruebas" in saved
    assert untranslated(saved) == []


def test_a_change_that_cannot_be_understood_says_so_in_spanish_and_changes_nothing(patient):
    client = client_for(patient.user)
    page = visible(client.post(reverse("portal-change", args=[patient.pk]),
                               {"purpose": "no-such-use", "decision": "deny",
                                "scope_kind": "all"}, follow=True, **SPANISH).content.decode())
    assert "no se ha cambiado nada" in page
    assert untranslated(page) == []
    assert not ConsentRecord.objects.filter(patient=patient).exists()


def test_words_built_in_python_follow_the_active_language(head_ct):
    from django.utils import translation

    with translation.override("es"):
        assert written_date(head_ct.study_date) == "2 de marzo de 2026"
        assert scan_name("", "MR") == "Resonancia magnética"
    with translation.override("en"):
        assert written_date(head_ct.study_date) == "2 March 2026"
        assert scan_name("", "MR") == "MRI scan"
