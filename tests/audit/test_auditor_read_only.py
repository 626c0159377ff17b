"""An auditor reads everything and changes nothing: every URL pattern is tried with every
writing method, with real ids and with the bodies a writer would send (each proven accepted
from its writer), and no row of any table changes (the ledger's tables only gain rows)."""

import json
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
    """The pattern with a real row's id for every <int:…> (a missing name fails the test)."""
    path = re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), pattern)
    path = re.sub(r"<(?:str|slug|path):(\w+)>", "x", path)
    path = path.replace("^", "").replace("$", "")
    return "/" + path.lstrip("/")


def snapshot() -> dict[str, list[dict]]:
    """Every row of every table, by primary key. The ledger's own tables may gain rows (an
    auditor's reads are events) but no row that was there may change."""
    rows = {}
    for model in apps.get_models():
        table = model._meta.db_table
        if table in UNWATCHED:
            continue
        rows[table] = list(model._default_manager.order_by("pk").values())
    return rows


# Sessions and sign-in attempts are the auditor's own, changed by simply being signed in;
# pending seals are the queue of events awaiting their chain link, which a verification
# run drains (the links it writes are watched, append-only, as audit_chainlink).
UNWATCHED = {"django_session", "axes_accessattempt", "axes_accesslog",
             "axes_accessfailurelog", "audit_pendingseal"}


def same_or_appended(before: dict, after: dict) -> list[str]:
    """Tables whose content changed; MAY_GROW tables may only have rows added."""
    changed = []
    for table, rows in before.items():
        now = after[table]
        if table in MAY_GROW:
            if now[:len(rows)] != rows:
                changed.append(table)
        elif now != rows:
            changed.append(table)
    return changed


@pytest.fixture
def world(db, patient, staff, steward):
    """A row behind every id a URL can name, and the people who may write to them."""
    from access.tokens import api_token_create
    from audit.models import AuditEvent
    from consent.models import ConsentForm
    from datasets.models import DatasetVersion, VersionStatus, WithdrawalNotice
    from tests.datasets.helpers import STEWARD, make_dataset

    study = make_study(patient, ("CT", "CHEST"))
    record = make_record(patient, "research", "permit")
    uninvited = make_patient()
    token, _ = api_token_create(owner=staff, name="PACS", scopes=["consent:read"],
                                actor=STEWARD)
    dataset = make_dataset(steward, selection={"modality": "CT"})  # selects the study above
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="t",
                                            status=VersionStatus.COMPLETE)
    notice = WithdrawalNotice.objects.create(version=version, cause="lapsed")
    event = AuditEvent.objects.order_by("pk").last()
    ids = {"patient_id": patient.pk, "study_id": study.pk, "event_id": event.pk,
           "token_id": token.pk, "object_id": record.pk, "dataset_id": dataset.pk,
           "version_id": version.pk, "export_id": version.pk, "notice_id": notice.pk,
           "consent_id": record.pk}
    form = ConsentForm.objects.get(code="imaging-use", version=1)
    ids["form_id"] = form.pk
    return {"ids": ids, "patient": patient, "uninvited": uninvited, "form": form,
            "staff": staff, "steward": steward, "dataset": dataset}


# Writes a writer makes successfully with exactly these bodies (test_each_body_is_accepted_
# from_its_writer proves it), so an auditor's refusal is a refusal, not a bad request:
# (URL pattern, who may, how the body is sent, body).
def writes(w) -> list[tuple[str, str, str, dict]]:
    return [
        ("portal/<int:patient_id>/choices/change/", "patient", "form",
         {"purpose": "research", "decision": "deny", "confirmed": "yes"}),
        ("tokens/", "staff", "form", {"name": "Router", "scopes": ["consent:write"]}),
        ("tokens/<int:token_id>/revoke/", "staff", "form", {}),
        ("desk/patients/<int:patient_id>/consent/", "staff", "form",
         {"purpose": "research", "decision": "deny", "scope_kind": "all", "source": "paper",
          "form_version": w["form"].pk}),
        ("datasets/new/", "steward", "form",
         {"name": "Knees", "purpose": "ai-training", "recipient": "Lab",
          "enforcement": "exclude", "modality": "MR", "burned_in_text": "exclude"}),
        ("datasets/<int:dataset_id>/run/", "steward", "form", {}),
        ("api/v1/consents", "staff", "json",
         {"patient": w["patient"].pk, "purpose": "research", "decision": "deny"}),
        ("api/v1/consents/withdraw", "staff", "json",
         {"patient": w["patient"].pk, "purpose": "research"}),
        ("api/v1/datasets", "steward", "json",
         {"name": "Chest AI", "purpose": "ai-training", "recipient": "Acme AI Lab",
          "selection": {"modality": "CR"}}),
        ("api/v1/datasets/<int:dataset_id>/exports", "steward", "json", {}),
    ]


def send(client, method, path, kind, body):
    if kind == "json":
        return getattr(client, method)(path, json.dumps(body), content_type="application/json")
    if method == "post":
        return client.post(path, body)
    return getattr(client, method)(path, body, content_type="application/json")


def test_an_auditor_cannot_change_anything_through_any_url(auditor, world):
    client = Client()
    sign_in(client, auditor)
    bodies = {pattern: (kind, body) for pattern, _, kind, body in writes(world)}
    before = snapshot()
    tried, statuses = 0, []
    for pattern in all_paths():
        if pattern.startswith("admin/") or pattern in {"login/", "logout/"}:
            continue  # the admin refuses non-staff; signing in and out change no data
        path = concrete(pattern, world["ids"])
        kind, body = bodies.get(pattern, ("json", {}))
        for method in ("post", "put", "patch", "delete"):
            response = send(client, method, path, kind, body)
            # The auditor's console (audit/…) is theirs to POST filters and runs to.
            assert (response.status_code not in (200, 201, 202, 204)
                    or pattern in READ_POSTS or pattern.startswith("audit/")), (
                method, path, response.status_code)
            statuses.append(response.status_code)
            tried += 1
        changed = same_or_appended(before, snapshot())
        assert changed == [], (pattern, changed)
    assert tried > 40
    # Real ids: no "not found" for lack of a row (404 stays the answer for not-yours).
    assert statuses.count(404) < statuses.count(403)


# POSTs an auditor may make that read: searches, verification, the ledger's CSV, their own
# second factor, pages that answer anyone (a reset or invitation link that is not valid),
# and the token form, which shows itself again refusing a scope the auditor cannot have
# (the snapshot above proves no token was made).
READ_POSTS = {
    "", "tokens/", "password-reset/<uidb64>/<token>/", "portal/invite/<str:token>/",
    "api/v1/patients/search", "api/v1/studies/search", "desk/", "account/two-factor/",
    "password-reset/", "api/v1/consent-checks", "exports/public-key/",
}


@pytest.mark.parametrize("index", range(10))
def test_each_body_is_accepted_from_its_writer(world, index):
    pattern, who, kind, body = writes(world)[index]
    writer = world["patient"].user if who == "patient" else world[who]
    client = Client()
    sign_in(client, writer)
    before = snapshot()
    response = send(client, "post", concrete(pattern, world["ids"]), kind, body)
    assert response.status_code < 400, (pattern, response.status_code,
                                        response.content[:300])
    changed = [t for t in same_or_appended(before, snapshot()) if t not in MAY_GROW]
    assert changed, (pattern, response.content[:2000])


@pytest.mark.parametrize("path", ["/admin/", "/admin/consent/consentrecord/"])
def test_the_admin_is_closed_to_auditors(auditor, path):
    client = Client()
    sign_in(client, auditor)
    response = client.get(path)
    assert response.status_code == 302 and "/admin/login/" in response.headers["Location"]
