"""Pages and documents every visitor meets: home, API schema and docs."""

import pytest
from django.test import Client

from tests.clients import sign_in


def test_home_needs_a_login(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login/")


@pytest.mark.parametrize("persona", ["staff", "outsider"])
def test_schema_and_docs_are_served_locally(request, persona):
    client = Client()
    sign_in(client, request.getfixturevalue(persona))
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/studies/ingest" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
    assert b"/static/drf_spectacular_sidecar/swagger-ui-dist/" in docs.content
