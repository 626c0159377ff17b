"""Direct identifiers are encrypted at rest and found through keyed blind indexes (issue 12,
item 5; issue 17's forgiving search): what the database holds, what each way in finds, the
indexes the look-ups use, and key rotation."""

import datetime

import pydicom
import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from pydicom.data import get_testdata_file

from audit.ledger import Actor
from consent.invitations import patient_invite
from consent.models import PatientInvite, Purpose
from consent.selectors import current_form
from consent.services import consent_record
from registry import identifiers
from registry.models import ImagingStudy, Patient, PatientSearchKey
from registry.registration import dicom_ingest_paths
from registry.selectors import SearchTermError, patient_search, study_search
from tests.clients import api_as
from tests.clients import signed_in as client_for
from tests.consent.factories import make_study

STAFF = Actor(label="staff", role="staff")


@pytest.fixture
def taylor(db):
    patient = Patient.objects.create(issuer="LOCAL", mrn="MRN-TD-20417", name="Dunmere^Taylor",
                                     birth_date=datetime.date(1961, 3, 14))
    study = make_study(patient, ("CT", "HEAD"))
    study.accession_number = "ACC-77031"
    study.save(update_fields=["accession_number", "accession_index"])
    return patient


def raw_row(table: str, pk: int) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        names = [c[0] for c in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


def test_a_raw_read_of_the_tables_shows_no_name_mrn_birth_date_accession_or_email(taylor):
    patient_invite(patient=taylor, email="taylor.dunmere@example.org", actor=STAFF)
    row = raw_row("registry_patient", taylor.pk)
    dump = repr(row) + repr(raw_row("registry_imagingstudy", taylor.studies.get().pk))
    dump += repr(raw_row("consent_patientinvite", PatientInvite.objects.get().pk))
    # The birth date whole, in either notation (a bare "1961" could be a row's id).
    for plain in ("Dunmere", "Taylor", "TD-20417", "1961-03-14", "19610314", "ACC-77031",
                  "taylor.dunmere"):
        assert plain.casefold() not in dump.casefold()
    # The columns hold Fernet tokens that the configured key opens.
    key = Fernet(settings.CONSENTRY_IDENTIFIER_KEYS[0].encode())
    assert key.decrypt(row["name"].encode()) == b"Dunmere^Taylor"
    assert key.decrypt(row["birth_date"].encode()) == b"1961-03-14"
    # Read through the model, everything is as written.
    again = Patient.objects.get(pk=taylor.pk)
    assert (again.name, again.mrn, again.birth_date) == (
        "Dunmere^Taylor", "MRN-TD-20417", datetime.date(1961, 3, 14))
    assert PatientInvite.objects.get().email == "taylor.dunmere@example.org"


def test_a_blank_name_reads_back_blank_not_none(db):
    patient = Patient.objects.create(issuer="LOCAL", mrn="MRN-NO-NAME")
    assert Patient.objects.get(pk=patient.pk).name == ""
    assert raw_row("registry_patient", patient.pk)["name"].startswith("gAAAAA")


@pytest.mark.parametrize("query", [
    "Taylor Dunmere", "Dunmere, Taylor", "Dunmere^Taylor", "dunmere taylor", "DÙNMERE",
    "Taylor", "Dunm", "Tay Dun", "MRN-TD-20417", "mrn-td-20417", "MRN-TD", "mrn-", " MRN-TD-2 ",
    "ACC-77031", "acc-77031",
])
def test_the_patient_is_found_by_mrn_whole_or_partial_by_name_in_any_order_or_accession(
        taylor, query):
    Patient.objects.create(issuer="LOCAL", mrn="OTHER-1", name="Taylor^Morgan")
    assert taylor in list(patient_search(query=query))


@pytest.mark.parametrize("query", [
    "Taylor Smith",  # every word must match
    "unmere",  # not a substring from the middle
    "MRN",  # under 4 characters: no partial MRN
    "TD-20417",  # the end of an MRN is not its start
    "ACC-7703",  # accession numbers are matched whole
])
def test_what_does_not_identify_the_patient_finds_nothing(taylor, query):
    assert taylor not in list(patient_search(query=query))


def test_staff_find_the_patient_at_the_desk_by_name_in_any_order(staff, taylor):
    for query in ("Taylor Dunmere", "Dunmere, Taylor", "mrn-td", "acc-77031"):
        response = client_for(staff).post("/desk/", {"q": query})
        assert response.status_code == 302, query
        assert response.headers["Location"].endswith(f"/desk/patients/{taylor.pk}/")


def test_the_api_finds_patients_and_studies_through_the_blind_indexes(staff, taylor):
    client = api_as(staff)
    found = client.post("/api/v1/patients/search", {"q": "Taylor Dunmere"}, format="json")
    assert [p["mrn"] for p in found.json()["results"]] == ["MRN-TD-20417"]
    assert found.json()["results"][0]["name"] == "Dunmere^Taylor"
    by_mrn = client.post("/api/v1/patients/search", {"mrn": "mrn-td-20417"}, format="json")
    assert [p["id"] for p in by_mrn.json()["results"]] == [taylor.pk]
    studies = client.post("/api/v1/studies/search", {"accession": "ACC-77031"}, format="json")
    assert [s["accession_number"] for s in studies.json()["results"]] == ["ACC-77031"]
    studies = client.post("/api/v1/studies/search", {"mrn": "MRN-TD-20417"}, format="json")
    assert [s["patient_mrn"] for s in studies.json()["results"]] == ["MRN-TD-20417"]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({}, "q", "Give a search term"),
    ({"q": "   "}, "q", "Give a search term"),
    ({"q": "x" * 201}, "q", "no more than 200"),
    ({"mrn": "M" * 65}, "mrn", "no more than 64"),
])
def test_empty_or_oversized_search_terms_are_a_clear_400(staff, taylor, body, field, words):
    response = api_as(staff).post("/api/v1/patients/search", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and words in error["message"]


def test_a_term_longer_than_any_identifier_is_refused_by_the_selectors(db):
    with pytest.raises(SearchTermError, match="too long"):
        patient_search(query="x" * 201)
    with pytest.raises(SearchTermError, match="too long"):
        study_search(accession="x" * 201)


def test_the_desk_says_what_is_wrong_with_an_empty_or_oversized_term(staff, taylor):
    for q, words in (("", "This field is required"), ("x" * 201, "at most 200 characters")):
        page = client_for(staff).post("/desk/", {"q": q}).content.decode()
        assert words in page


def test_registration_finds_or_creates_the_patient_by_mrn_and_encrypts_once_per_patient(
        db, tmp_path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    paths = []
    for number in range(3):  # three studies of one patient
        ds = source.copy()
        ds.PatientName, ds.PatientID = "Dunmere^Taylor", "MRN-TD-20417"
        ds.AccessionNumber = f"ACC-{number}"
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.10.543.{number}"
        ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.10.543.{number}.1"
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.543.{number}.1.1"
        paths.append(tmp_path / f"{number}.dcm")
        ds.save_as(paths[-1])
    first = dicom_ingest_paths(paths=paths[:2], actor=STAFF, source="test")
    again = dicom_ingest_paths(paths=paths[2:], actor=STAFF, source="test")
    assert first.counts["registered"] == 2 and again.counts["registered"] == 1
    patient = Patient.objects.get()  # one patient, found again by the MRN's blind index
    assert patient.name == "Dunmere^Taylor" and patient.studies.count() == 3
    assert list(patient_search(query="Taylor Dunmere")) == [patient]
    assert [s.patient for s in study_search(accession="acc-2")] == [patient]


def test_an_encrypted_column_cannot_be_compared_in_sql_by_mistake(taylor):
    with pytest.raises(FieldError, match="blind index"):
        Patient.objects.filter(mrn="MRN-TD-20417").exists()
    with pytest.raises(FieldError, match="blind index"):
        ImagingStudy.objects.filter(accession_number__icontains="77031").exists()
    assert Patient.objects.filter(birth_date__isnull=False).count() == 1


def test_a_token_no_configured_key_opens_is_an_error_not_shown_as_a_name(taylor):
    with (override_settings(CONSENTRY_IDENTIFIER_KEYS=[Fernet.generate_key().decode()]),
          pytest.raises(ImproperlyConfigured, match="rotate_identifier_keys")):
        Patient.objects.get(pk=taylor.pk)


def plans(sql: str, params: list) -> str:
    """The database's plan for a query, with sequential scans discouraged on PostgreSQL so
    that a usable index shows even on the tiny test tables."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


@pytest.mark.parametrize("what", ["mrn", "search", "accession", "registration"])
def test_each_blind_index_look_up_uses_an_index(taylor, what):
    queryset = {
        "mrn": Patient.objects.filter(mrn_index=identifiers.mrn_digest("MRN-TD-20417")),
        "registration": Patient.objects.filter(
            issuer="LOCAL", mrn_index__in=[identifiers.mrn_digest("MRN-TD-20417")]),
        "search": PatientSearchKey.objects.filter(
            digest__in=identifiers.query_digests("Taylor Dunmere")["name_words"]),
        "accession": ImagingStudy.objects.filter(
            accession_index=identifiers.accession_digest("ACC-77031")),
    }[what]
    sql, params = queryset.query.sql_with_params()
    plan = plans(sql, list(params))
    index = {"mrn": "patient_mrn_index", "registration": "patient_mrn_per_issuer",
             "search": "search_key_unique", "accession": "study_accession"}[what]
    if connection.vendor == "sqlite":
        # SQLite names the index behind a unique constraint sqlite_autoindex_…; the plan
        # still says which columns it searches by.
        column = {"mrn": "mrn_index=?", "registration": "mrn_index=?", "search": "digest=?",
                  "accession": "accession_index=?"}[what]
        assert "USING" in plan and "INDEX" in plan and column in plan, plan
    else:
        assert "Index" in plan and index in plan, plan
    assert "Seq Scan" not in plan and "SCAN registry" not in plan


def test_the_migration_encrypts_plaintext_rows_and_fills_the_indexes(db):
    """A row as it was before encryption (plain text, no digests) is encrypted and indexed
    by the migration's own function."""
    from django.apps import apps

    migration = __import__("registry.migrations.0004_identifiers_encrypted",
                           fromlist=["encrypt_and_index"])
    patient = Patient.objects.create(issuer="LOCAL", mrn="placeholder")
    study = make_study(patient, ("CT", "HEAD"))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE registry_patient SET mrn = %s, name = %s, birth_date = %s, "
                       "mrn_index = '' WHERE id = %s",
                       ["MRN-OLD-1", "Dunmere^Taylor", "1961-03-14", patient.pk])
        cursor.execute("UPDATE registry_imagingstudy SET accession_number = %s, "
                       "accession_index = '' WHERE id = %s", ["ACC-OLD", study.pk])
    PatientSearchKey.objects.filter(patient=patient).delete()
    assert not list(patient_search(query="Taylor Dunmere"))

    migration.encrypt_and_index(apps, None)

    row = raw_row("registry_patient", patient.pk)
    assert "Dunmere" not in repr(row) and "MRN-OLD" not in repr(row) and "1961" not in repr(row)
    assert Patient.objects.get(pk=patient.pk).birth_date == datetime.date(1961, 3, 14)
    assert list(patient_search(query="Taylor Dunmere")) == [patient]
    assert list(patient_search(mrn="MRN-OLD-1")) == [patient]
    assert [s.pk for s in study_search(accession="ACC-OLD")] == [study.pk]


def test_key_rotation_re_encrypts_keeps_search_working_and_the_ledger_intact(
        taylor, capsys):
    consent_record(patient=taylor, purpose=Purpose.objects.get(code="ai-training"),
                   decision="deny", actor=STAFF, source="paper", form=current_form(),
                   proxy_name="Dunmere^Robin", proxy_relationship="parent")
    patient_invite(patient=taylor, email="taylor.dunmere@example.org", actor=STAFF)
    old = settings.CONSENTRY_IDENTIFIER_KEYS[0]
    new = Fernet.generate_key().decode()
    new_index_key = "rotated-blind-index-" + Fernet.generate_key().decode()
    with override_settings(CONSENTRY_IDENTIFIER_KEYS=[new, old],
                           CONSENTRY_BLIND_INDEX_KEY=new_index_key):
        # Before the rows are rewritten, the old digests no longer match the new index key.
        assert not list(patient_search(query="Taylor Dunmere"))
        call_command("rotate_identifier_keys")
        assert "Re-encrypted 1 patients, 1 studies, 1 invitations and 1 consent records" in \
            capsys.readouterr().out
    row = raw_row("registry_patient", taylor.pk)
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(row["name"].encode())
    assert Fernet(new.encode()).decrypt(row["mrn"].encode()) == b"MRN-TD-20417"
    invite = raw_row("consent_patientinvite",
                     PatientInvite.objects.values_list("pk", flat=True).get())
    assert Fernet(new.encode()).decrypt(invite["email"].encode()) == \
        b"taylor.dunmere@example.org"
    # The old key can go: everything reads and is found with the new keys alone.
    with override_settings(CONSENTRY_IDENTIFIER_KEYS=[new],
                           CONSENTRY_BLIND_INDEX_KEY=new_index_key):
        assert Patient.objects.get(pk=taylor.pk).name == "Dunmere^Taylor"
        assert list(patient_search(query="Dunmere, Taylor")) == [taylor]
        assert list(patient_search(query="mrn-td")) == [taylor]
        assert [s.patient for s in study_search(accession="ACC-77031")] == [taylor]
        # Rows the ledger vouches for digest plain values, never ciphertext: a rotation
        # changes no digest.
        call_command("verify_ledger")
        assert "Ledger intact" in capsys.readouterr().out


def test_the_ledger_finds_a_patient_by_mrn_through_the_blind_index(taylor):
    """The auditor's MRN filter and Disclosures resolve the MRN through the registry's
    blind index, case ignored, and label events with the decrypted MRN."""
    from audit.registry import patient_labels, patient_refs_for_mrn

    assert patient_refs_for_mrn("mrn-td-20417") == [str(taylor.pk)]
    assert patient_refs_for_mrn("MRN-TD") == []  # whole MRNs only: an auditor names one
    assert patient_labels([str(taylor.pk)]) == {str(taylor.pk): "MRN-TD-20417 (LOCAL)"}
