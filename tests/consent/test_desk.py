"""The staff desk, by persona."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from consent.models import ConsentRecord
from tests.clients import signed_in as client_for
from tests.consent.factories import make_study


@pytest.fixture
def ct(patient):
    study = make_study(patient, ("CT", "HEAD"))
    study.accession_number, study.description = "ACC-42", "CT HEAD"
    study.save(update_fields=["accession_number", "accession_index", "description"])
    return study


def test_staff_find_a_patient_by_accession_and_see_the_grid(staff, patient, ct):
    client = client_for(staff)
    response = client.post("/desk/", {"q": "ACC-42"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Alice Liddell" in page
    cell = page.split(f'data-study="{ct.study_uid}"')[1].split('data-purpose="ai-training">')[1]
    assert cell.lstrip().startswith('<span class="no">No</span>')
    assert "needs the patient" in cell
    viewed = AuditEvent.objects.get(action="phi.viewed")
    assert viewed.patient_ref == str(patient.pk) and viewed.actor_label == staff.username


def test_search_by_the_start_of_a_name_or_an_mrn_lists_matches(staff, patient, other_patient):
    one = client_for(staff).post("/desk/", {"q": "Builder"})
    assert one.status_code == 302 and one.headers["Location"].endswith(
        f"/desk/patients/{other_patient.pk}/")
    lidd = client_for(staff).post("/desk/", {"q": "lidd"})
    assert lidd.headers["Location"].endswith(f"/desk/patients/{patient.pk}/")
    # A partial MRN (its first 4 characters or more), in any case, lists both.
    page = client_for(staff).post("/desk/", {"q": "mrn-"}).content.decode()
    assert "2 patients found" in page and "Bob Builder" in page and "Alice Liddell" in page
    # Listed by name, as a person reads them (names are sorted after decryption).
    assert page.index("Bob Builder") < page.index("Alice Liddell")
    empty = client_for(staff).post("/desk/", {"q": "Nobody"}).content.decode()
    assert "No patient matches" in empty


@pytest.mark.parametrize("persona", ["steward", "auditor", "outsider"])
def test_only_staff_use_the_desk(request, persona, patient):
    client = client_for(request.getfixturevalue(persona))
    for path in ["/desk/", f"/desk/patients/{patient.pk}/"]:
        assert client.get(path).status_code == 403
    assert client.post(f"/desk/patients/{patient.pk}/consent/", {}).status_code == 403
    assert not AuditEvent.objects.filter(action="phi.viewed").exists()


def test_a_patient_cannot_use_the_desk(patient):
    assert client_for(patient.user).get(f"/desk/patients/{patient.pk}/").status_code == 403


def paper(**overrides):
    data = {"purpose": "research", "decision": "permit", "scope_kind": "all",
            "scope_value": "", "source": "paper", "form_version": "1", "witness": "",
            "proxy_name": "", "proxy_relationship": ""}
    data.update(overrides)
    return data


def test_staff_record_a_paper_consent_with_its_scan(staff, patient, data_dir):
    from consent.models import ConsentForm

    form_id = ConsentForm.objects.get(version=1).pk
    scan = SimpleUploadedFile("signed.pdf", b"%PDF-1.4 signed form", "application/pdf")
    response = client_for(staff).post(f"/desk/patients/{patient.pk}/consent/",
                                      {**paper(form_version=form_id), "scanned_form": scan},
                                      follow=True)
    assert "Consent recorded" in response.content.decode()
    record = ConsentRecord.objects.get()
    assert (record.source, record.recorded_by_label, record.attachment_name) == (
        "paper", staff.username, "signed.pdf")
    assert (data_dir / "consent-forms" / f"{record.attachment_sha256}.pdf").read_bytes() == \
        b"%PDF-1.4 signed form"
    event = AuditEvent.objects.get(action="consent.recorded")
    assert event.details["scanned_form_sha256"] == record.attachment_sha256


@pytest.mark.parametrize(("overrides", "message"), [
    ({"source": "verbal"}, "needs a witness"),
    ({"scope_kind": "study", "scope_value": "1.2.3.999"}, "no such study"),
    ({"purpose": "astrology"}, "purpose"),
    ({"decision": "maybe"}, "decision"),
    ({"form_version": "999"}, "form_version"),
    ({"proxy_name": "Dad"}, "relationship"),
])
def test_bad_paper_consents_are_explained_and_record_nothing(staff, patient, overrides,
                                                             message):
    from consent.models import ConsentForm

    data = paper(form_version=ConsentForm.objects.get(version=1).pk)
    data.update(overrides)
    response = client_for(staff).post(f"/desk/patients/{patient.pk}/consent/", data,
                                      follow=True)
    page = response.content.decode()
    assert "Nothing was recorded" in page and message in page
    assert ConsentRecord.objects.count() == 0


def test_a_scan_that_is_not_a_document_is_refused(staff, patient, data_dir):
    from consent.models import ConsentForm

    bad = SimpleUploadedFile("virus.exe", b"MZ...", "application/x-msdownload")
    response = client_for(staff).post(
        f"/desk/patients/{patient.pk}/consent/",
        {**paper(form_version=ConsentForm.objects.get(version=1).pk), "scanned_form": bad},
        follow=True)
    assert "PDF, PNG or JPEG" in response.content.decode()
    assert ConsentRecord.objects.count() == 0
    assert not (data_dir / "consent-forms").exists()


def test_every_desk_search_is_logged_and_its_terms_stay_out_of_the_url(staff, patient):
    client = client_for(staff)
    page = client.get("/desk/").content.decode()
    assert 'method="post"' in page and 'role="search"' in page
    client.post("/desk/", {"q": "^"})
    client.post("/desk/", {"q": "Liddell"}, follow=True)
    searches = AuditEvent.objects.filter(action="phi.searched").order_by("id")
    assert [e.details["criteria"] for e in searches] == [{"q": "^"}, {"q": "Liddell"}]
    assert all(e.details["via"] == "desk" and e.actor_label == staff.username
               for e in searches)
    # A search in the query string is not run.
    assert "Liddell" not in client.get("/desk/?q=Liddell").content.decode()
    assert searches.count() == 2


# Issue 13: nothing outside the vocabulary is stored; each series' anatomy is shown.

def _desk_post(staff, patient, **overrides):
    from consent.models import ConsentForm

    data = paper(form_version=ConsentForm.objects.get(version=1).pk)
    data.update(overrides)
    return client_for(staff).post(f"/desk/patients/{patient.pk}/consent/", data,
                                  follow=True)


def test_the_desk_refuses_brainz_with_suggestions(staff, patient):
    """Reproduction: a paper consent scoped to "BRAINZ" was stored as a permanent record
    that matches nothing."""
    page = _desk_post(staff, patient, scope_kind="body_part",
                      scope_value="BRAINZ").content.decode()
    assert "Nothing was recorded" in page
    assert "Scope value" in page and "BRAINZ" in page
    assert "did you mean HEAD (head and brain)" in page
    assert ConsentRecord.objects.count() == 0


def test_the_desk_stores_mri_as_mr(staff, patient):
    """Reproduction: "MRI" (the DICOM code is MR) was stored as typed."""
    page = _desk_post(staff, patient, scope_kind="modality", scope_value="MRI",
                      decision="deny").content.decode()
    assert "Consent recorded" in page
    assert ConsentRecord.objects.get().scope_value == "MR"


@pytest.mark.parametrize(("kind", "typed", "stored"), [
    ("body_part", "head", "HEAD"), ("body_part", "Head and brain", "HEAD"),
    ("body_part", "brain", "HEAD"), ("modality", "x-ray", "XRAY"),
    ("modality", "ultrasound", "US"), ("modality", "CAT scan", "CT"),
])
def test_the_desk_canonicalises_what_the_clerk_types(staff, patient, kind, typed, stored):
    _desk_post(staff, patient, scope_kind=kind, scope_value=typed)
    assert ConsentRecord.objects.get().scope_value == stored


@pytest.mark.parametrize(("kind", "typed", "message"), [
    ("modality", "CHEST", "not a kind of scan"),
    ("body_part", "MR", "not a part of the body"),
    ("body_part", "KNEE", "LOWERLIMB"),
    ("body_part", "", "needs a value"),
    ("modality", "%' OR 1=1 --", "not a kind of scan"),
    ("modality", "M" * 65, "Scope value"),
    ("all", "HEAD", "takes no value"),
    ("nonsense", "HEAD", "Scope kind"),
])
def test_the_desk_refuses_scope_values_outside_the_vocabulary(staff, patient, kind, typed,
                                                              message):
    page = _desk_post(staff, patient, scope_kind=kind, scope_value=typed).content.decode()
    assert "Nothing was recorded" in page and message in page
    assert ConsentRecord.objects.count() == 0


def test_the_desk_offers_the_vocabulary_as_suggestions(staff, patient):
    page = client_for(staff).get(f"/desk/patients/{patient.pk}/").content.decode()
    assert '<datalist id="scope-terms">' in page
    assert '<option value="HEAD">head and brain</option>' in page
    assert '<option value="XRAY">' in page and 'list="scope-terms"' in page


def test_the_patient_page_shows_each_series_anatomy_and_its_source(staff, patient):
    from tests.consent.factories import make_series

    study = make_study(patient, ("MR", "BRAIN"))
    make_series(study, f"{study.study_uid}.8", "MR", "", description="AX T2 BRAIN")
    make_series(study, f"{study.study_uid}.9", "MR", "")
    page = client_for(staff).get(f"/desk/patients/{patient.pk}/").content.decode()
    row = page.split(f'data-study="{study.study_uid}"')[1].split("</tr>")[0]
    assert "BRAIN</span> <span class=\"anatomy-source\">(from Body Part Examined)" in row
    assert "(from description or protocol name)" in row
    assert "anatomy not recorded</span>" in row

