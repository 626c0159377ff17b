"""Finding patients and studies through the API: identifying terms only in request
bodies (never in URLs, which land in access logs), filters, bad input, the ledger."""

import pytest

from audit.models import AuditEvent
from tests.clients import api_as as as_user
from tests.clients import api_with_token as with_token


def search(client, what: str, body: dict, page: str = ""):
    return client.post(f"/api/v1/{what}/search{page}", body, format="json")


def test_patients_are_found_by_mrn_or_accession_and_paginated(staff, hospital):
    alice, _, _ = hospital
    body = search(as_user(staff), "patients", {"mrn": "MRN-A"}).json()
    assert body["count"] == 1 and body["results"][0]["id"] == alice.pk
    assert {"count", "next", "previous", "results"} <= set(body)
    by_accession = search(as_user(staff), "patients", {"q": "ACC1"}).json()
    assert [p["mrn"] for p in by_accession["results"]] == ["MRN-A"]


def test_pages_of_a_search_are_asked_in_the_url_and_the_terms_in_the_body(staff, hospital,
                                                                          monkeypatch):
    from rest_framework.pagination import PageNumberPagination

    monkeypatch.setattr(PageNumberPagination, "page_size", 1)
    # "MRN-" is the start of both MRNs: a partial MRN of 4 characters or more.
    first = search(as_user(staff), "patients", {"q": "MRN-"}).json()
    assert first["count"] == 2 and first["next"].endswith("?page=2")
    second = search(as_user(staff), "patients", {"q": "MRN-"}, "?page=2").json()
    assert {first["results"][0]["mrn"], second["results"][0]["mrn"]} == {"MRN-A", "MRN-B"}


@pytest.mark.parametrize(("path", "params"), [
    ("/api/v1/patients", {"mrn": "MRN-A"}), ("/api/v1/patients", {"q": "Liddell"}),
    ("/api/v1/studies", {"mrn": "MRN-A"}), ("/api/v1/studies", {"accession": "ACC1"}),
    ("/api/v1/studies", {"study_instance_uid": "1.2.3"}),
])
def test_identifying_terms_in_a_url_are_refused_and_point_to_the_search(staff, hospital, path,
                                                                        params):
    response = as_user(staff).get(path, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == next(iter(params)) and f"POST {path}/search" in error["message"]
    assert not AuditEvent.objects.filter(action="phi.searched").exists()


@pytest.mark.parametrize(("body", "expected"), [
    ({"mrn": "MRN-A"}, {"a-ct", "a-mr"}),
    ({"accession": "ACC1"}, {"a-ct"}),
    ({"modality": "ct"}, {"a-ct", "b-ct"}),
    ({"date_from": "2026-01-01"}, {"a-mr"}),
    ({"date_to": "2025-12-31"}, {"a-ct"}),
    ({"mrn": "MRN-A", "modality": "MR"}, {"a-mr"}),
])
def test_studies_are_searched_by_each_filter(staff, hospital, body, expected):
    _, _, studies = hospital
    results = search(as_user(staff), "studies", body).json()["results"]
    assert {r["study_instance_uid"] for r in results} == {studies[k].study_uid
                                                          for k in expected}


def test_studies_are_listed_by_date_and_modality_in_the_url(staff, hospital):
    _, _, studies = hospital
    results = as_user(staff).get("/api/v1/studies", {"modality": "MR"}).json()["results"]
    assert [r["study_instance_uid"] for r in results] == [studies["a-mr"].study_uid]


def test_a_study_can_be_found_by_its_uid(staff, hospital):
    _, _, studies = hospital
    results = search(as_user(staff), "studies", {
        "study_instance_uid": studies["b-ct"].study_uid}).json()["results"]
    assert [r["patient_mrn"] for r in results] == ["MRN-B"]


@pytest.mark.parametrize(("body", "field"), [
    ({"date_from": "last week"}, "date_from"), ({"modality": "C T;"}, "modality"),
    ({"mrn": ["MRN-A"]}, "mrn"), ({"mrn": "M" * 65}, "mrn"),
])
def test_bad_study_filters_get_400_with_the_field(staff, hospital, body, field):
    response = search(as_user(staff), "studies", body)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field
    assert not AuditEvent.objects.filter(action="phi.searched").exists()


@pytest.mark.parametrize("what", ["patients", "studies"])
def test_a_nul_character_in_a_search_is_a_400_not_a_crash(staff, hospital, what):
    field = "q" if what == "patients" else "mrn"
    response = search(as_user(staff), what, {field: "MRN\x00A"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


def test_every_search_and_list_is_in_the_ledger_with_its_token(staff, hospital):
    client = with_token(staff, "consent:read")
    search(client, "patients", {"mrn": "MRN-A"})
    client.get("/api/v1/studies", {"modality": "CT"})
    client.get("/api/v1/patients")
    searches = AuditEvent.objects.filter(action="phi.searched").order_by("id")
    assert [e.details["what"] for e in searches] == ["patients", "studies", "patients"]
    assert searches[0].details["criteria"] == {"mrn": "MRN-A"}
    assert all(e.api_token and e.actor_label == staff.username for e in searches)


@pytest.mark.parametrize("what", ["patients", "studies"])
def test_a_patient_or_a_stranger_cannot_search(patient, outsider, hospital, what):
    for user in (patient.user, outsider):
        assert search(as_user(user), what, {"mrn": "MRN-A"}).status_code == 403
