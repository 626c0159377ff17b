"""Finding patients and studies through the API: filters, bad input, the ledger."""

import pytest

from audit.models import AuditEvent
from tests.clients import api_as as as_user
from tests.clients import api_with_token as with_token


def test_patients_are_found_by_mrn_or_accession_and_paginated(staff, hospital):
    alice, _, _ = hospital
    body = as_user(staff).get("/api/v1/patients", {"mrn": "MRN-A"}).json()
    assert body["count"] == 1 and body["results"][0]["id"] == alice.pk
    assert {"count", "next", "previous", "results"} <= set(body)
    by_accession = as_user(staff).get("/api/v1/patients", {"q": "ACC1"}).json()
    assert [p["mrn"] for p in by_accession["results"]] == ["MRN-A"]


@pytest.mark.parametrize(("params", "expected"), [
    ({"mrn": "MRN-A"}, {"a-ct", "a-mr"}),
    ({"accession": "ACC1"}, {"a-ct"}),
    ({"modality": "ct"}, {"a-ct", "b-ct"}),
    ({"date_from": "2026-01-01"}, {"a-mr"}),
    ({"date_to": "2025-12-31"}, {"a-ct"}),
    ({"mrn": "MRN-A", "modality": "MR"}, {"a-mr"}),
])
def test_studies_are_searched_by_each_filter(staff, hospital, params, expected):
    _, _, studies = hospital
    results = as_user(staff).get("/api/v1/studies", params).json()["results"]
    assert {r["study_instance_uid"] for r in results} == {studies[k].study_uid
                                                          for k in expected}


def test_a_study_can_be_found_by_its_uid(staff, hospital):
    _, _, studies = hospital
    results = as_user(staff).get("/api/v1/studies", {
        "study_instance_uid": studies["b-ct"].study_uid}).json()["results"]
    assert [r["patient_mrn"] for r in results] == ["MRN-B"]


@pytest.mark.parametrize(("params", "field"), [
    ({"date_from": "last week"}, "date_from"), ({"modality": "C T;"}, "modality"),
])
def test_bad_study_filters_get_400_with_the_field(staff, hospital, params, field):
    response = as_user(staff).get("/api/v1/studies", params)
    assert response.status_code == 400
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("path", ["/api/v1/patients", "/api/v1/studies"])
def test_a_nul_character_in_a_search_is_a_400_not_a_crash(staff, hospital, path):
    param = "q" if path.endswith("patients") else "mrn"
    response = as_user(staff).get(path, {param: "MRN\x00A"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == param


def test_every_search_is_in_the_ledger_with_its_token(staff, hospital):
    client = with_token(staff, "consent:read")
    client.get("/api/v1/patients", {"mrn": "MRN-A"})
    client.get("/api/v1/studies", {"modality": "CT"})
    searches = AuditEvent.objects.filter(action="phi.searched").order_by("id")
    assert [e.details["what"] for e in searches] == ["patients", "studies"]
    assert searches[0].details["criteria"] == {"mrn": "MRN-A"}
    assert all(e.api_token and e.actor_label == staff.username for e in searches)


