"""JSON the API will not parse: nested too deeply or too large is a 400 with a clear
message, never a 500, and nothing is written."""

import pytest

from audit.models import AuditEvent
from tests.clients import api_as

URL = "/api/v1/consent-checks"


def post(user, body: str):
    return api_as(user).post(URL, body, content_type="application/json")


@pytest.mark.parametrize("depth", [100_000, 1_000, 33])
def test_deeply_nested_json_is_refused_with_400(staff, depth):
    before = AuditEvent.objects.count()
    body = '{"purpose": "ai-training", "study_instance_uids": ' + "[" * depth + "]" * depth + "}"
    response = post(staff, body)
    assert response.status_code == 400, response.content[:300]
    assert "nested" in response.json()["error"]["message"]
    assert AuditEvent.objects.count() == before


def test_nesting_within_the_limit_is_parsed_and_judged_by_the_serializer(staff):
    body = '{"purpose": "ai-training", "study_instance_uids": ' + "[" * 31 + "]" * 31 + "}"
    response = post(staff, body)
    assert response.status_code == 400
    assert response.json()["error"]["field"].startswith("study_instance_uids")


def test_a_body_larger_than_the_limit_is_refused_with_400(staff, settings):
    before = AuditEvent.objects.count()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    uids = ", ".join(f'"1.2.{n}"' for n in range(2_000))
    response = post(staff, '{"purpose": "ai-training", "study_instance_uids": [' + uids + "]}")
    assert response.status_code == 400
    assert "too large" in response.json()["error"]["message"]
    assert AuditEvent.objects.count() == before


def test_a_body_that_is_not_utf8_is_refused_with_400(staff):
    response = api_as(staff).post(URL, b'{"purpose": "\xff"}', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]
