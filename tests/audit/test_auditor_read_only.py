"""An auditor reads everything and changes nothing: every URL pattern is tried with every
writing method, and no table outside the ledger's own reports changes."""

import re

import pytest
from django.apps import apps
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.clients import sign_in
from tests.consent.factories import make_patient, make_record, make_study

# Tables an auditor's requests may touch without changing anyone's data: the ledger
# (their reads are themselves events), verification reports, their own session.
MAY_GROW = {"audit_auditevent", "audit_chainlink", "audit_pendingseal",
            "audit_verificationrun", "django_session", "axes_accessattempt",
            "axes_accesslog", "axes_accessfailurelog"}


def all_paths(patterns=None, prefix=""):
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            yield from all_paths(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def concrete(pattern: str, ids: dict) -> str:
    path = re.sub(r"<int:(\w+)>", lambda m: str(ids.get(m.group(1), 1)), pattern)
    path = re.sub(r"<(?:str|slug|path):(\w+)>", "x", path)
    path = path.replace("^", "").replace("$", "")
    return "/" + path.lstrip("/")


def table_counts() -> dict[str, int]:
    return {m._meta.db_table: m._default_manager.count() for m in apps.get_models()
            if m._meta.db_table not in MAY_GROW}


def test_an_auditor_cannot_change_anything_through_any_url(auditor, staff):
    patient = make_patient()
    study = make_study(patient)
    record = make_record(patient, "research", "permit")
    ids = {"patient_id": patient.pk, "study_id": study.pk, "event_id": 1, "token_id": 1,
           "object_id": record.pk}
    client = Client()
    sign_in(client, auditor)
    before = table_counts()
    tried = 0
    for pattern in all_paths():
        if pattern.startswith("admin/") or pattern in {"login/", "logout/"}:
            continue  # the admin refuses non-staff; signing in and out change no data
        path = concrete(pattern, ids)
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(path, {}, content_type="application/json")
            assert response.status_code != 201, (method, path)
            tried += 1
    assert tried > 40
    assert table_counts() == before


@pytest.mark.parametrize("path", ["/admin/", "/admin/consent/consentrecord/"])
def test_the_admin_is_closed_to_auditors(auditor, path):
    client = Client()
    sign_in(client, auditor)
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]
