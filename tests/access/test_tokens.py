"""API tokens: shown once, stored hashed, scoped, expiring, revocable, named in the ledger."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiToken
from access.tokens import api_token_create, api_token_revoke
from audit.ledger import Actor
from audit.models import AuditEvent
from registry.models import Instance

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
    assert (event.api_token, event.actor_label, event.actor_role) == (
        token.prefix, staff.username, "system")
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_token_without_the_scope_is_forbidden(staff, corpus):
    _, secret = token_for(staff, ["consent:read"])
    response = upload(bearer(secret), corpus)
    assert response.status_code == 403
    assert "'ingest' scope" in response.json()["error"]["message"]
    assert Instance.objects.count() == 0


@pytest.mark.parametrize(("spoil", "message"), [
    ("expire", "expired"), ("revoke", "revoked"), ("wrong-secret", "Invalid"),
    ("malformed", "Malformed"), ("deactivate", "inactive"),
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
    elif spoil == "malformed":
        secret = "not-a-token"
    elif spoil == "deactivate":
        staff.is_active = False
        staff.save()
    response = upload(bearer(secret), corpus)
    assert response.status_code == 401
    assert message in response.json()["error"]["message"]
    assert Instance.objects.count() == 0


def test_a_header_without_bearer_is_refused(staff, corpus):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token abc")
    assert upload(client, corpus).status_code == 401


def test_revoking_is_recorded_once(staff):
    token, _ = token_for(staff, ["ingest"])
    api_token_revoke(token=token, actor=ADMIN)
    api_token_revoke(token=token, actor=ADMIN)
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"name": " ", "scopes": ["ingest"]}, "name"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": ["ingest", "root"]}, "scopes"),
    ({"name": "x", "scopes": ["ingest"],
      "expires_at": timezone.now() - timedelta(days=1)}, "expires_at"),
])
def test_bad_token_requests_name_the_field_and_create_nothing(staff, kwargs, field):
    with pytest.raises(ValidationError) as raised:
        api_token_create(owner=staff, actor=ADMIN, **kwargs)
    assert field in raised.value.message_dict
    assert ApiToken.objects.count() == 0


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
