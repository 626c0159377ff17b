"""docs/access.md is the access matrix: every page and endpoint by every role and token
scope. This test walks every URL pattern as each of them and compares what happens with the
matrix, so a new endpoint without a decision, or a door that opens wider than written,
fails the build.

How a request is judged: "yes" when it reaches the view (any answer the view gives, a 400
for an empty form included); "no" when it is refused (401, 403, a 404 for someone else's
data, or a redirect to sign in or to the second step). Ids in URLs are the persona's own
where it has one (a patient's own record, a person's own token)."""

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from access.models import TokenScope
from access.roles import Role
from access.tokens import api_token_create
from audit import ledger
from audit.ledger import Actor
from datasets.models import DatasetVersion, WithdrawalNotice
from tests.clients import sign_in
from tests.conftest import make_user
from tests.consent.factories import make_record, make_study
from tests.datasets.helpers import make_dataset

MATRIX = Path(__file__).resolve().parents[2] / "docs" / "access.md"
PERSONAS = ["anonymous", "patient", "staff", "steward", "auditor", "privacy-officer", "admin"]
SCOPES = list(TokenScope.values)
REFUSED_REDIRECTS = ("/login/?next=", "/account/two-factor/?next=", "/login/verify/?next=",
                     "/admin/login/?next=")
# Patterns not walked: the admin's own pages are one row ("admin/"), and admin/login/ is
# only a redirect to the sign-in page.
NOT_WALKED = {"admin/login/"}


def url_patterns(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern) == "admin/":
                yield "admin/"
                continue
            yield from url_patterns(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def read_matrix() -> dict[str, dict[str, str]]:
    rows = {}
    lines = [line for line in MATRIX.read_text().splitlines() if line.startswith("| `")]
    header = next(line for line in MATRIX.read_text().splitlines()
                  if line.startswith("| page or endpoint"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = dict(zip(columns, cells[1:], strict=True))
    return rows


@pytest.fixture
def world(db):
    people = {"patient": make_user("alice", Role.PATIENT), "staff": make_user("sam", Role.STAFF),
              "steward": make_user("stella", Role.STEWARD),
              "auditor": make_user("audrey", Role.AUDITOR),
              "privacy-officer": make_user("olga", Role.PRIVACY_OFFICER),
              "admin": make_user("root")}
    people["admin"].is_superuser = people["admin"].is_staff = True
    people["admin"].save()
    from registry.models import Patient

    alice = Patient.objects.create(issuer="LOCAL", mrn="MRN-ALICE", user=people["patient"])
    study = make_study(alice, ("CT", "HEAD"))
    record = make_record(alice, "research", "permit")
    dataset = make_dataset(people["steward"], enforcement="log-only", irb_waiver="W-1",
                           approving_body="Board", approver="Dr Q")
    version = DatasetVersion.objects.create(dataset=dataset, number=1, requested_by="stella")
    notice = WithdrawalNotice.objects.create(version=version, cause="lapsed")
    event = ledger.record(action="login.succeeded", actor=Actor(label="x"))
    system = make_user("system")
    for role in (Role.STAFF, Role.STEWARD, Role.AUDITOR):
        system.groups.add(Group.objects.get(name=role))
    tokens = {scope: api_token_create(owner=system, name=scope, scopes=[scope],
                                      actor=Actor(label="admin"))[1] for scope in SCOPES}
    own_tokens = {}
    for persona in ("staff", "steward", "auditor"):
        own_tokens[persona] = api_token_create(
            owner=people[persona], name="own", scopes=[TokenScope.CONSENT_READ],
            actor=Actor(label="admin"))[0].pk
    return {"people": people, "tokens": tokens, "own_tokens": own_tokens,
            "ids": {"patient_id": alice.pk, "study_id": study.pk, "dataset_id": dataset.pk,
                    "version_id": version.pk, "export_id": version.pk, "event_id": event.pk,
                    "notice_id": notice.pk, "form_id": record.form_id,
                    "consent_id": record.pk}}


def concrete(pattern: str, ids: dict) -> str:
    path = re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), pattern)
    return "/" + re.sub(r"<(?:str:)?(\w+)>", "x", path)


def judge(client, path: str) -> str:
    response = client.get(path)
    if response.status_code == 405:
        response = client.post(path, {})
    assert response.status_code < 500, (path, response.status_code)
    if response.status_code in (401, 403, 404):
        return "no"
    if response.status_code in (301, 302, 303) and response["Location"].startswith(
            REFUSED_REDIRECTS):
        return "no"
    return "yes"


def observe(world) -> dict[str, dict[str, str]]:
    seen = {}
    for pattern in dict.fromkeys(url_patterns()):
        if pattern in NOT_WALKED:
            continue
        row = {}
        for persona in PERSONAS:
            ids = {**world["ids"], "token_id": world["own_tokens"].get(persona, 0)}
            client = Client()
            if persona != "anonymous":
                sign_in(client, world["people"][persona])
            row[persona] = judge(client, concrete(pattern, ids))
        for scope in SCOPES:
            if not pattern.startswith("api/v1/"):
                row[scope] = "—"
                continue
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {world['tokens'][scope]}")
            row[scope] = judge(client, concrete(pattern, world["ids"]))
        seen[pattern or "(home)"] = row
    return seen


def test_every_page_and_endpoint_is_in_the_matrix_and_keeps_to_it(world):
    written = read_matrix()
    observed = observe(world)
    missing = sorted(set(observed) - set(written))
    assert not missing, f"no decision in docs/access.md for: {missing}"
    gone = sorted(set(written) - set(observed))
    assert not gone, f"docs/access.md names URLs that no longer exist: {gone}"
    differences = [f"{pattern} as {who}: written {written[pattern][who]}, observed {seen}"
                   for pattern, row in observed.items() for who, seen in row.items()
                   if written[pattern][who] != seen]
    assert not differences, "\n".join(differences)
