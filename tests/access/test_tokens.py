"""API tokens: shown once, stored hashed, scoped, expiring, revocable, named in the ledger."""

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from access.api_auth import scoped
from access.models import ApiToken, TokenScope
from access.roles import Role
from access.tokens import api_token_create, api_token_revoke
from audit.ledger import Actor
from audit.models import AuditEvent
from registry.models import Instance
from tests.clients import api_with_token, signed_in

ADMIN = Actor(label="admin", role="staff")
INGEST = "/api/v1/studies/ingest"


def token_for(user, scopes, **kwargs):
    return api_token_create(owner=user, name="PACS router", scopes=scopes, actor=ADMIN,
                            **kwargs)


def bearer(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def upload(client, corpus):
    with open(corpus / "CT_small.dcm", "rb") as handle:
        return client.post(INGEST, {"files": [handle]}, format="multipart")


def test_the_secret_is_returned_once_and_only_its_hash_is_kept(staff):
    token, secret = token_for(staff, ["ingest"])
    assert secret.startswith(f"cst_{token.prefix}_")
    stored = ApiToken.objects.get()
    assert secret.split("_", 2)[2] not in str(stored.__dict__)
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.details["token"] == token.prefix and event.details["scopes"] == ["ingest"]


def test_a_token_with_the_scope_can_ingest_and_is_named_in_the_ledger(staff, corpus):
    token, secret = token_for(staff, ["ingest", "consent:read"])
    response = upload(bearer(secret), corpus)
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="dicom.registered")
    assert (event.api_token, event.actor_label, event.actor_role, event.actor_ip) == (
        token.prefix, staff.username, "system", "127.0.0.1")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_without_the_scope_is_forbidden(staff, corpus):
    _, secret = token_for(staff, ["consent:read"])
    response = upload(bearer(secret), corpus)
    assert response.status_code == 403
    assert "'ingest' scope" in response.json()["error"]["message"]
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(("spoil", "message"), [
    ("expire", "This API token has expired."), ("revoke", "This API token has been revoked."),
    ("wrong-secret", "Invalid API token."), ("unknown-prefix", "Invalid API token."),
    ("malformed", "Malformed API token."), ("not-ours", "Malformed API token."),
    ("deactivate", "The owner of this API token is inactive."),
])
def test_unusable_tokens_are_refused_with_a_reason(staff, corpus, spoil, message):
    token, secret = token_for(staff, ["ingest"])
    if spoil == "expire":
        ApiToken.objects.filter(pk=token.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1))
    elif spoil == "revoke":
        api_token_revoke(token=token, actor=ADMIN)
    elif spoil == "wrong-secret":
        secret = secret[:-4] + "abcd"
    elif spoil == "unknown-prefix":
        secret = secret.replace(token.prefix, "0" * len(token.prefix))
    elif spoil == "malformed":
        secret = "not-a-token"
    elif spoil == "not-ours":
        secret = secret.replace("cst_", "xyz_", 1)
    elif spoil == "deactivate":
        staff.is_active = False
        staff.save()
    response = upload(bearer(secret), corpus)
    assert response.status_code == 401
    assert response.json()["error"]["message"] == message
    assert Instance.objects.count() == 0


def test_a_secret_with_underscores_in_it_authenticates(staff, corpus):
    """Secrets are URL-safe base64, which has "_": only the first two separate the parts."""
    token, _ = token_for(staff, ["ingest"])
    ApiToken.objects.filter(pk=token.pk).update(
        secret_sha256=hashlib.sha256(b"a_b_c").hexdigest())
    assert upload(bearer(f"cst_{token.prefix}_a_b_c"), corpus).status_code == 201


def test_the_secret_has_the_documented_shape(staff):
    token, secret = token_for(staff, ["ingest"])
    assert re.fullmatch(rf"cst_{token.prefix}_[A-Za-z0-9_-]{{43}}", secret)
    assert re.fullmatch(r"[0-9a-f]{12}", token.prefix)


def test_use_is_written_down_at_most_once_a_minute(staff):
    """Each call would otherwise write the token's row; a minute's calls share one write."""
    token, secret = token_for(staff, ["consent:read"])
    client = bearer(secret)
    for seconds_ago, written in ((30, False), (60.5, True)):
        before = timezone.now() - timedelta(seconds=seconds_ago)
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=before)
        assert client.get("/api/v1/patients").status_code == 200
        token.refresh_from_db()
        assert (token.last_used_at > before) is written


def test_a_header_without_bearer_is_refused(staff, corpus):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token abc")
    assert upload(client, corpus).status_code == 401


def test_revoking_is_recorded_once(staff):
    token, _ = token_for(staff, ["ingest"])
    api_token_revoke(token=token, actor=ADMIN)
    api_token_revoke(token=token, actor=ADMIN)
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


CHOOSE = "choose from consent:read, consent:write, ingest, export, ledger:read"


@pytest.mark.parametrize(("kwargs", "field", "message"), [
    ({"name": " ", "scopes": ["ingest"]}, "name", "give the token a name that says who uses it"),
    ({"name": "", "scopes": ["ingest"]}, "name", "give the token a name that says who uses it"),
    ({"name": "x", "scopes": []}, "scopes", CHOOSE),
    ({"name": "x", "scopes": ["ingest", "root", "admin"]}, "scopes",
     f"{CHOOSE}; unknown: admin, root"),
    ({"name": "x", "scopes": ["ingest", "export"]}, "scopes",
     "sam-staff's roles do not allow export"),
    ({"name": "x", "scopes": ["ledger:read", "ingest", "export"]}, "scopes",
     "sam-staff's roles do not allow export, ledger:read"),
    ({"name": "x", "scopes": ["ingest"],
      "expires_at": timezone.now() - timedelta(days=1)}, "expires_at", "must be in the future"),
])
def test_bad_token_requests_name_the_field_and_create_nothing(staff, kwargs, field, message):
    with pytest.raises(ValidationError) as raised:
        api_token_create(owner=staff, actor=ADMIN, **kwargs)
    assert raised.value.message_dict == {field: [message]}
    assert ApiToken.objects.count() == 0
    assert not AuditEvent.objects.filter(action="api_token.created").exists()


def test_the_ledger_records_the_tokens_owner_scopes_and_expiry(staff):
    expires = timezone.now() + timedelta(days=30)
    token, _ = token_for(staff, ["ingest", "consent:read", "ingest"], expires_at=expires)
    assert (token.name, token.scopes, token.expires_at, token.created_by_label) == (
        "PACS router", ["consent:read", "ingest"], expires, "admin")
    event = AuditEvent.objects.get(action="api_token.created")
    assert (event.actor_label, event.details) == ("admin", {
        "token": token.prefix, "owner": staff.username, "scopes": ["consent:read", "ingest"],
        "expires_at": expires.isoformat()})
    token_for(staff, ["ingest"])
    assert AuditEvent.objects.filter(action="api_token.created").latest("pk").details[
        "expires_at"] is None


def test_revoking_keeps_a_use_recorded_meanwhile(staff):
    token, secret = token_for(staff, ["consent:read"])
    assert bearer(secret).get("/api/v1/patients").status_code == 200  # after token was read
    api_token_revoke(token=token, actor=ADMIN)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.last_used_at is not None


def test_revoking_is_recorded_with_the_token_and_its_owner(staff):
    token, _ = token_for(staff, ["ingest"])
    api_token_revoke(token=token, actor=ADMIN)
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert (event.actor_label, event.details) == (
        "admin", {"token": token.prefix, "owner": staff.username})


def test_the_command_prints_a_token_that_works(staff, corpus):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", "--owner", staff.username, "--name", "PACS",
                 "--scope", "ingest", stdout=out, stderr=StringIO())
    assert upload(bearer(out.getvalue().strip()), corpus).status_code == 201


@pytest.mark.parametrize(("args", "message"), [
    (["--owner", "nobody", "--name", "x", "--scope", "ingest"], "no user"),
    (["--owner", "sam-staff", "--name", " ", "--scope", "ingest"], "name"),
    (["--owner", "sam-staff", "--name", "x", "--scope", "ingest", "--days", "0"], "--days"),
])
def test_the_command_refuses_bad_arguments(staff, args, message):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)
    assert ApiToken.objects.count() == 0


# How the API tells its callers apart (access/api_auth.py): bearer tokens for systems, roles
# for signed-in people, the words of each refusal, and the ledger naming who acted.

PATIENTS = "/api/v1/patients"  # consent:read, or staff, steward or auditor signed in
BEARER_ONLY = "Send the token as 'Authorization: Bearer <token>'."


def message(response) -> str:
    return response.json()["error"]["message"]


def test_a_signed_in_person_is_named_in_the_ledger_with_their_role_and_address(staff):
    response = signed_in(staff).get(PATIENTS, REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="phi.searched")
    assert (event.actor_label, event.actor_role, event.api_token, event.actor_ip) == (
        staff.username, "staff", "", "192.0.2.7")


def test_a_token_is_named_in_the_ledger_as_a_system_with_the_callers_address(staff):
    client = api_with_token(staff, "consent:read")
    response = client.get(PATIENTS, REMOTE_ADDR="192.0.2.8")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="phi.searched")
    assert (event.actor_label, event.actor_role, event.api_token, event.actor_ip) == (
        staff.username, "system", ApiToken.objects.get().prefix, "192.0.2.8")


def test_a_signed_in_person_without_the_role_is_told_what_would_do(patient):
    response = signed_in(patient.user).get(PATIENTS)
    assert response.status_code == 403
    assert message(response) == ("This needs the 'consent:read' scope (API token) or the role "
                                 "staff or steward or auditor (signed in).")
    assert not AuditEvent.objects.filter(action="phi.searched").exists()


def test_nobody_signed_in_and_no_token_is_refused(db):
    response = APIClient().get(PATIENTS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert not AuditEvent.objects.filter(action="phi.searched").exists()


@pytest.mark.parametrize("header", ["Token abc", "Bearer", "Bearer    "])
def test_a_header_that_is_not_a_bearer_token_is_refused_with_how_to_send_one(db, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(PATIENTS)
    assert response.status_code == 401
    assert message(response) == BEARER_ONLY


def test_spaces_around_the_token_are_allowed(staff):
    client = api_with_token(staff, "consent:read")
    secret = client._credentials["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
    client.credentials(HTTP_AUTHORIZATION=f"Bearer   {secret}  ")
    assert client.get(PATIENTS).status_code == 200


def test_a_session_wider_than_the_role_table_is_refused_at_start_up_and_named():
    with pytest.raises(ImproperlyConfigured,
                       match=r"STAFF\] may not use 'export' \(access\.roles\.ROLE_SCOPES\)"):
        scoped(TokenScope.EXPORT, Role.STEWARD, Role.STAFF)


def test_the_api_schema_describes_bearer_tokens(db):
    spec = Client().get("/api/schema/?format=json").json()
    assert spec["components"]["securitySchemes"]["apiToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "An API token made by staff: 'Authorization: Bearer cst_…'."}


def judge(permission: type, user, token=None) -> tuple[bool, str]:
    """What a permission made by ``scoped`` answers for a request from ``user`` (with
    ``token`` when a system calls), and the message a refusal carries."""
    request = Request(APIRequestFactory().get(PATIENTS))
    request.user, request.auth = user, token
    judge = permission()
    return judge.has_permission(request, None), judge.message


def test_scoped_lets_a_token_in_by_scope_and_its_owners_roles_and_people_by_role(staff, patient):
    """The endpoints' permissions are made by ``scoped`` as their modules load; made again
    here, each clause of the rule is seen to decide."""
    reads = scoped(TokenScope.CONSENT_READ, Role.STAFF, Role.STEWARD)
    wanted = ("This needs the 'consent:read' scope (API token) or the role staff or steward "
              "(signed in).")
    with_scope, _ = api_token_create(owner=staff, name="r", scopes=["consent:read"], actor=ADMIN)
    without, _ = api_token_create(owner=staff, name="i", scopes=["ingest"], actor=ADMIN)
    assert judge(reads, staff, with_scope) == (True, wanted)
    assert judge(reads, staff, without) == (False, wanted)
    assert judge(reads, staff, None) == (True, wanted)
    assert judge(reads, patient.user, None) == (False, wanted)
    assert judge(reads, AnonymousUser(), None) == (False, wanted)
    staff.groups.clear()
    with_scope = ApiToken.objects.select_related("owner").get(pk=with_scope.pk)  # a new request
    assert judge(reads, with_scope.owner, with_scope) == (
        False, "The owner of this token no longer holds a role that allows 'consent:read'.")
