"""The API docs can be trusted: examples that work when pasted, typed result fields, the
error format typed, 415 for form bodies, and a trailing slash that reaches the endpoint."""

import json

from django.test import Client
from rest_framework.test import APIClient

from tests.clients import sign_in
from tests.consent.factories import make_study


def schema(client) -> dict:
    return client.get("/api/schema/?format=json").json()


def test_consent_check_examples_are_accepted_as_pasted(staff, patient):
    study = make_study(patient, ("CT", "HEAD"))
    spec = schema(Client())
    operation = spec["paths"]["/api/v1/consent-checks"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert len(examples) == 2
    client = APIClient()
    sign_in(client, staff)
    for example in examples.values():
        body = dict(example["value"])
        # The same shape, aimed at this test's data.
        if "patient_mrn" in body:
            body["patient_mrn"] = patient.mrn
        else:
            assert "patient_mrn" not in body  # never both: the API refuses that
            body["study_instance_uids"] = [study.study_uid, "1.2.3.4"]
        response = client.post("/api/v1/consent-checks", body, format="json")
        assert response.status_code == 200, response.content
        assert set(response.json()) == {"purpose", "at", "results", "unknown"}


def test_result_fields_are_documented_not_additional_props():
    spec = schema(Client())
    output = spec["components"]["schemas"]["CheckOutput"]
    results = output["properties"]["results"]
    assert results["type"] == "array" and "$ref" in results["items"]
    answer = spec["components"]["schemas"]["CheckAnswer"]
    assert {"study_instance_uid", "allowed", "reason", "deciding_record_ids"} <= set(
        answer["properties"])
    assert "additionalProperties" not in json.dumps(answer)


def test_error_field_is_a_nullable_string_with_its_meaning():
    error = schema(Client())["components"]["schemas"]["Error"]["properties"]["error"]
    field = error["properties"]["field"]
    assert field["type"] == "string" and field["nullable"] is True and field["description"]
    assert error["properties"]["fields"]["type"] == "object"


def test_form_encoded_bodies_get_415_and_the_docs_say_so(staff):
    client = APIClient()
    sign_in(client, staff)
    response = client.post("/api/v1/consent-checks", {"purpose": "research"})
    assert response.status_code == 415
    assert response.json()["error"]["field"] is None
    operation = schema(Client())["paths"]["/api/v1/consent-checks"]["post"]
    assert "415" in operation["responses"] and "form-encoded" in \
        operation["responses"]["415"]["description"]


def test_a_trailing_slash_reaches_the_endpoint(staff, patient):
    make_study(patient, ("CT", "HEAD"))
    client = APIClient()
    sign_in(client, staff)
    response = client.post("/api/v1/consent-checks/", {"purpose": "research",
                                                       "patient_mrn": patient.mrn},
                           format="json")
    assert response.status_code == 200
    assert client.get("/api/v1/purposes/").status_code == 200
    assert client.get("/api/v1/no-such-thing/").status_code == 404
