"""The patient portal, by persona: alice sees only alice's data; bob's ids give 404."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from consent.models import ConsentForm, ConsentRecord, Guardianship, PatientInvite
from tests.clients import signed_in as client_for
from tests.conftest import make_user
from tests.consent.factories import make_study

PAGES = ["portal-choices", "portal-scans", "portal-history", "portal-uses"]


def url(name, patient):
    from django.urls import reverse

    return reverse(name, args=[patient.pk])


@pytest.fixture
def alice_studies(patient):
    return [make_study(patient, ("CT", "HEAD")), make_study(patient, ("CR", "CHEST"))]


@pytest.mark.parametrize("page", PAGES)
def test_a_patient_sees_their_own_pages(patient, alice_studies, page):
    response = client_for(patient.user).get(url(page, patient))
    assert response.status_code == 200
    assert b"Alice Liddell" in response.content


@pytest.mark.parametrize("page", [*PAGES, "portal-change"])
def test_another_patients_pages_are_not_found(patient, other_patient, page):
    make_study(other_patient, ("MR", "KNEE"))
    response = client_for(patient.user).get(url(page, other_patient),
                                            {"purpose": "education", "decision": "deny",
                                             "scope_kind": "all"})
    assert response.status_code == 404


def test_posting_a_choice_for_another_patient_is_not_found_and_changes_nothing(
        patient, other_patient):
    response = client_for(patient.user).post(url("portal-change", other_patient), {
        "purpose": "education", "decision": "deny", "scope_kind": "all"})
    assert response.status_code == 404
    assert ConsentRecord.objects.count() == 0


@pytest.mark.parametrize("persona", ["staff", "auditor", "outsider"])
def test_people_who_are_not_the_patient_get_not_found(request, patient, persona):
    user = request.getfixturevalue(persona)
    for page in PAGES:
        assert client_for(user).get(url(page, patient)).status_code == 404


def test_anonymous_visitors_are_sent_to_sign_in(patient):
    response = Client().get(url("portal-choices", patient))
    assert response.status_code == 302
    assert "/login/" in response.headers["Location"]


def test_changing_a_choice_asks_for_confirmation_then_records_it(patient, alice_studies):
    client = client_for(patient.user)
    params = {"purpose": "ai-training", "decision": "deny", "scope_kind": "body_part",
              "scope_value": "HEAD"}
    assert client.get(url("portal-change", patient), params)["Location"].endswith(
        "/choices/")  # nothing to confirm in a URL
    confirm = client.post(url("portal-change", patient), params)
    assert confirm.status_code == 200
    assert b"Confirm your choice" in confirm.content
    assert ConsentRecord.objects.count() == 0  # nothing until confirmed

    done = client.post(url("portal-change", patient), {**params, "confirmed": "yes"},
                       follow=True)
    assert done.status_code == 200
    assert "Saved" in done.content.decode()
    record = ConsentRecord.objects.get()
    assert (record.decision, record.scope_kind, record.scope_value, record.source) == (
        "deny", "body_part", "HEAD", "portal")
    assert record.recorded_by_id == patient.user_id
    event = AuditEvent.objects.get(action="consent.recorded")  # a first no, not a withdrawal
    assert event.actor_label == patient.user.username

    history = client.get(url("portal-history", patient)).content.decode()
    assert "scans of your head" in history and "by you, online" in history


def test_my_scans_shows_what_is_allowed_per_purpose(patient, alice_studies):
    client = client_for(patient.user)
    client.post(url("portal-change", patient), {"purpose": "ai-training", "confirmed": "yes",
                                                "decision": "permit", "scope_kind": "all"})
    client.post(url("portal-change", patient), {"purpose": "ai-training", "decision": "deny",
                                                "confirmed": "yes", "scope_kind": "body_part",
                                                "scope_value": "head"})
    page = client.get(url("portal-scans", patient)).content.decode()
    head_row = page.split(f'data-study-id="{alice_studies[0].pk}"')[1].split("</tr>")[0]
    chest_row = page.split(f'data-study-id="{alice_studies[1].pk}"')[1].split("</tr>")[0]
    ai_cell = 'data-purpose="ai-training">'
    assert head_row.split(ai_cell)[1].lstrip().startswith('<span class="no">Not allowed')
    assert chest_row.split(ai_cell)[1].lstrip().startswith('<span class="yes">Allowed')


@pytest.mark.parametrize("params", [
    {"purpose": "no-such-purpose", "decision": "deny", "scope_kind": "all"},
    {"purpose": "education", "decision": "perhaps", "scope_kind": "all"},
    {"purpose": "education", "decision": "deny", "scope_kind": "study",
     "scope_value": "1.2.3.999"},
    {"purpose": "education", "decision": "deny", "scope_kind": "modality",
     "scope_value": "<script>"},
    {},
])
def test_bad_changes_are_explained_and_change_nothing(patient, params):
    response = client_for(patient.user).post(url("portal-change", patient), params,
                                             follow=True)
    assert response.status_code == 200
    assert "nothing was changed" in response.content.decode().lower()
    assert ConsentRecord.objects.count() == 0


def test_a_guardian_manages_a_dependants_choices_labelled_as_such(patient, other_patient):
    parent = make_user("pat-parent", "patient")
    Guardianship.objects.create(patient=other_patient, user=parent, relationship="parent")
    client = client_for(parent)
    page = client.get(url("portal-choices", other_patient)).content.decode()
    assert "Acting as parent" in page
    client.post(url("portal-change", other_patient), {"purpose": "education",
                                                      "decision": "deny", "scope_kind": "all",
                                                      "confirmed": "yes"})
    record = ConsentRecord.objects.get()
    assert (record.patient, record.proxy_relationship) == (other_patient, "parent")
    assert "(parent)" in client.get(url("portal-history", other_patient)).content.decode()
    # The guardian is still not anybody else's guardian.
    assert client.get(url("portal-choices", patient)).status_code == 404


def test_uses_page_explains_its_empty_state(patient):
    page = client_for(patient.user).get(url("portal-uses", patient)).content.decode()
    assert "No one has used your scans" in page


def test_a_new_consent_text_asks_for_review_until_the_patient_keeps_or_changes(patient):
    client = client_for(patient.user)
    client.post(url("portal-change", patient), {"purpose": "education", "decision": "deny",
                                                "scope_kind": "all", "confirmed": "yes"})
    client.post(url("portal-change", patient), {"purpose": "ai-training", "decision": "permit",
                                                "scope_kind": "all", "confirmed": "yes"})
    assert "has changed" not in client.get(url("portal-choices", patient)).content.decode()
    v2 = ConsentForm.objects.create(code="imaging-use", version=2, title="v2", text="new",
                                    text_sha256="0" * 64, published_at=timezone.now())
    assert "has changed" in client.get(url("portal-choices", patient)).content.decode()

    kept = client.post(url("portal-reaffirm", patient), follow=True).content.decode()
    assert "has changed" not in kept
    assert "2 choices are kept" in kept
    latest = ConsentRecord.objects.filter(form=v2)
    assert sorted(latest.values_list("purpose__code", "decision")) == [
        ("ai-training", "permit"), ("education", "deny")]


def test_keeping_choices_for_another_patient_is_not_found(patient, other_patient):
    response = client_for(patient.user).post(url("portal-reaffirm", other_patient))
    assert response.status_code == 404
    assert ConsentRecord.objects.count() == 0


# Invitations. The email leaves through the outbox, run inline here.

@pytest.fixture
def newcomer(db):
    """A registered patient with no portal account yet."""
    from registry.models import Patient

    return Patient.objects.create(issuer="LOCAL", mrn="NEW-1", name="New^Patient")


@pytest.fixture
def invite(staff, inline_celery, django_capture_on_commit_callbacks):
    """Staff invite; the link reaches only the patient's mailbox, never the staff page."""
    def send(patient, email="alice@example.org"):
        return _invite(staff, patient, email, django_capture_on_commit_callbacks)
    return send


def _invite(staff, patient, email, after_commit):
    mail.outbox.clear()
    with after_commit(execute=True):
        response = client_for(staff).post(f"/desk/patients/{patient.pk}/invite/",
                                          {"email": email})
    assert response.status_code == 200
    page = response.content.decode()
    assert "invitation is being emailed" in page and "/portal/invite/" not in page
    [message] = mail.outbox
    assert message.to == [email]
    link = next(line for line in message.body.splitlines() if "/portal/invite/" in line)
    assert link.split("/portal/invite/")[1].strip("/") not in page
    return link.replace("http://127.0.0.1:8000", "")


def test_an_invited_patient_sets_a_password_once(invite, newcomer):
    patient = newcomer
    link = invite(patient)
    visitor = Client()
    assert visitor.get(link).status_code == 200
    weak = visitor.post(link, {"password1": "123", "password2": "123"})
    assert weak.status_code == 200 and b"too short" in weak.content
    personal = visitor.post(link, {"password1": "Patient-New-1", "password2": "Patient-New-1"})
    assert personal.status_code == 200 and b"too close to your name" in personal.content
    done = visitor.post(link, {"password1": "a-long-passphrase-9", "password2":
                               "a-long-passphrase-9"}, follow=True)
    assert done.status_code == 200
    patient.refresh_from_db()
    assert patient.user is not None and patient.user.check_password("a-long-passphrase-9")
    again = Client().get(link)
    assert again.status_code == 410 and b"already been used" in again.content
    assert AuditEvent.objects.filter(action="portal.joined").count() == 1
    assert PatientInvite.objects.get().token_sha256 not in (None, "")


def test_a_patient_with_an_account_cannot_be_invited_again(staff, patient):
    password_before = patient.user.password
    response = client_for(staff).post(f"/desk/patients/{patient.pk}/invite/",
                                      {"email": "attacker@example.org"})
    assert response.status_code == 200
    assert "already has a portal account" in response.content.decode()
    assert PatientInvite.objects.count() == 0 and len(mail.outbox) == 0
    patient.user.refresh_from_db()
    assert patient.user.password == password_before


def test_an_old_invite_cannot_take_over_an_account_made_since(invite, newcomer):
    first = invite(newcomer, "first@example.org")
    second = invite(newcomer, "second@example.org")
    Client().post(second, {"password1": "a-long-passphrase-9",
                           "password2": "a-long-passphrase-9"})
    newcomer.refresh_from_db()
    owner = newcomer.user
    response = Client().post(first, {"password1": "staff-chosen-pass-7",
                                      "password2": "staff-chosen-pass-7"})
    assert response.status_code == 410 and b"already have an account" in response.content
    owner.refresh_from_db()
    assert owner.check_password("a-long-passphrase-9")


def test_an_expired_invite_says_so(invite, newcomer):
    link = invite(newcomer)
    PatientInvite.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    response = Client().get(link)
    assert response.status_code == 410
    assert b"expired" in response.content


def test_a_made_up_invite_link_is_refused(db):
    response = Client().get("/portal/invite/not-a-real-token/")
    assert response.status_code == 410
    assert b"not valid" in response.content


def test_a_bad_email_is_refused_and_no_invite_is_made(staff, newcomer):
    response = client_for(staff).post(f"/desk/patients/{newcomer.pk}/invite/",
                                      {"email": "not-an-email"})
    assert response.status_code == 200
    assert PatientInvite.objects.count() == 0


@pytest.mark.parametrize("persona", ["auditor", "outsider"])
def test_only_staff_may_invite(request, persona, patient):
    user = request.getfixturevalue(persona)
    response = client_for(user).post(f"/desk/patients/{patient.pk}/invite/",
                                     {"email": "x@example.org"})
    assert response.status_code == 403
    assert PatientInvite.objects.count() == 0


def test_a_patient_may_not_invite(patient):
    response = client_for(patient.user).post(f"/desk/patients/{patient.pk}/invite/",
                                             {"email": "x@example.org"})
    assert response.status_code == 403


def test_a_patient_opens_their_own_scan_but_not_someone_elses(patient, other_patient,
                                                                alice_studies):
    from django.urls import reverse

    bobs = make_study(other_patient, ("MR", "KNEE"))
    client = client_for(patient.user)
    mine = client.get(reverse("portal-scan", args=[patient.pk, alice_studies[0].pk]))
    assert mine.status_code == 200 and b"Training AI tools" in mine.content
    assert client.get(reverse("portal-scan", args=[patient.pk, bobs.pk])).status_code == 404
    assert client.get(reverse("portal-scan", args=[other_patient.pk, bobs.pk])
                      ).status_code == 404


# Issue 13: the exception form offers only valid pairs and shows what it covers.

def _options(page: str) -> list[str]:
    import re

    form = page.split('name="scope"')[1].split("</select>")[0]
    return re.findall(r'<option value="([^"]+)"', form)


def test_the_exception_form_offers_only_pairs_the_vocabulary_knows(patient, alice_studies):
    from registry import vocabulary

    page = client_for(patient.user).get(url("portal-choices", patient)).content.decode()
    options = _options(page)
    kinds = {}
    for option in options:
        kind, _, value = option.partition(":")
        kinds.setdefault(kind, []).append(value)
    assert kinds["body_part"] == list(vocabulary.regions())
    assert set(kinds["modality"]) >= {"CT", "MR", "XRAY", "CR"}
    assert set(kinds["modality"]) <= set(vocabulary.modalities())
    assert set(kinds["study"]) == {s.study_uid for s in alice_studies}
    assert 'value="body_part:HEAD">Head and brain</option>' in page
    assert "<script" not in page.split('class="add-exception"')[1].split("</details>")[0]


def test_a_kind_of_scan_with_chest_is_refused_not_saved(patient, alice_studies):
    """Reproduction: "a kind of scan" with "Chest" was saved as a modality scope that
    matched nothing, and the patient's CR CHEST PA stayed allowed."""
    client = client_for(patient.user)
    params = {"purpose": "research", "decision": "deny", "scope_kind": "modality",
              "scope_value": "CHEST"}
    for response in (client.post(url("portal-change", patient), params, follow=True),
                     client.post(url("portal-change", patient), {**params, "confirmed": "yes"},
                                 follow=True)):
        page = response.content.decode()
        assert "Nothing was changed" in page and "not a kind of scan" in page
    assert not ConsentRecord.objects.exists()


def test_the_confirmation_lists_the_scans_the_exception_covers(patient, alice_studies):
    from registry.models import ImagingStudy

    ImagingStudy.objects.filter(pk=alice_studies[0].pk).update(description="CT HEAD")
    unknown = make_study(patient, ("DX", ""))
    ImagingStudy.objects.filter(pk=unknown.pk).update(description="DX SCOUT")
    client = client_for(patient.user)
    page = client.post(url("portal-change", patient), {
        "purpose": "ai-training", "decision": "deny", "scope": "body_part:HEAD"}
    ).content.decode()
    assert "scans of your head and brain" in page
    assert "This applies to 2 of your scans:" in page
    # Scan names as a person writes them, not in DICOM's capitals.
    assert "CT head" in page and "CT HEAD" not in page
    assert "DX scout" in page and "not recorded for this scan" in page
    assert 'name="scope_value" value="HEAD"' in page
    # A yes to the same region covers only the scan known to be of the head.
    page = client.post(url("portal-change", patient), {
        "purpose": "ai-training", "decision": "permit", "scope": "body_part:HEAD"}
    ).content.decode()
    assert "This applies to 1 of your scans:" in page and "DX scout" not in page


def test_the_confirmation_says_plainly_when_it_covers_nothing(patient, alice_studies):
    page = client_for(patient.user).post(url("portal-change", patient), {
        "purpose": "ai-training", "decision": "deny", "scope": "modality:MG"}
    ).content.decode()
    assert "This covers none of your scans today" in page
    assert "your mammograms" in page


def test_an_x_ray_exception_covers_the_chest_radiograph(patient, alice_studies):
    client = client_for(patient.user)
    params = {"purpose": "research", "decision": "deny", "scope": "modality:XRAY"}
    page = client.post(url("portal-change", patient), params).content.decode()
    assert "your X-rays" in page and "This applies to 1 of your scans:" in page
    client.post(url("portal-change", patient), {
        "purpose": "research", "decision": "deny", "scope_kind": "modality",
        "scope_value": "XRAY", "confirmed": "yes"})
    assert ConsentRecord.objects.get().scope_value == "XRAY"


@pytest.mark.parametrize("scope", [
    "nonsense:HEAD", "modality:", "body_part:BRAINZ", "modality:CHEST", "study:1.2.3.4",
    "body_part:" + "H" * 90, "HEAD", ":", "body_part:|HEAD|",
])
def test_broken_exception_scopes_are_refused_and_change_nothing(patient, alice_studies,
                                                                scope):
    client = client_for(patient.user)
    params = {"purpose": "research", "decision": "deny", "scope": scope}
    for response in (client.post(url("portal-change", patient), params, follow=True),
                     client.post(url("portal-change", patient), {**params, "confirmed": "yes"},
                                 follow=True)):
        page = response.content.decode()
        assert response.status_code == 200
        assert "Nothing was changed" in page or "could not be understood" in page
    assert not ConsentRecord.objects.exists()


def test_another_patients_study_cannot_be_named_in_an_exception(patient, other_patient,
                                                                alice_studies):
    bobs = make_study(other_patient, ("MR", "KNEE"))
    client = client_for(patient.user)
    client.post(url("portal-change", patient), {
        "purpose": "research", "decision": "deny", "scope": f"study:{bobs.study_uid}"})
    assert not ConsentRecord.objects.exists()
