"""Schemathesis against /api/schema/: generated requests (valid and invalid) for every
operation must never cause a server error, and every response must match the schema."""

import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from access.models import TokenScope
from access.roles import Role
from access.tokens import api_token_create
from audit.ledger import Actor
from tests.consent.factories import make_patient, make_record, make_study

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance,
          content_type_conformance, response_schema_conformance]


def load_schema():
    from config.wsgi import application

    # Generating the schema reads no data, so it is loaded once, at collection.
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)


@pytest.fixture(autouse=True)
def keep_test_connection():
    """As Django's own test client does: a request must not close the test's connection
    (and with it the transaction that holds the test data)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(staff):
    # An owner whose roles allow every scope, so every operation is reached.
    for role in (Role.STEWARD, Role.AUDITOR):
        staff.groups.add(Group.objects.get(name=role))
    patient = make_patient("FUZZ-1")
    make_study(patient, ("CT", "HEAD"))
    make_record(patient, "research", "permit")
    _, secret = api_token_create(owner=staff, name="fuzzer", scopes=list(TokenScope.values),
                                 actor=Actor(label="admin"))
    return secret


schema = load_schema()


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_no_server_error_and_no_response_contradicts_the_schema(db, case, token):
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
