"""A token never outranks its owner: its scopes stay within what the owner's roles allow
(access.roles.ROLE_SCOPES), when it is made and on every request; admins see and revoke any."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command

from access.api_auth import scoped
from access.models import ApiToken, TokenScope
from access.roles import ROLE_SCOPES, Role
from access.tokens import api_token_create
from audit.ledger import Actor
from audit.models import AuditEvent
from tests.clients import api_with_token, signed_in
from tests.conftest import make_user

ADMIN = Actor(label="admin", role="admin")


def test_staff_cannot_mint_an_export_token_on_the_page(staff):
    page = signed_in(staff).post("/tokens/", {"name": "exporter", "scopes": ["export"]})
    assert page.status_code == 200
    assert "Select a valid choice" in page.content.decode()
    assert ApiToken.objects.count() == 0


def test_the_page_offers_only_what_the_roles_allow(staff, steward):
    staff_page = signed_in(staff).get("/tokens/").content.decode()
    steward_page = signed_in(steward).get("/tokens/").content.decode()
    assert 'value="consent:write"' in staff_page and 'value="export"' not in staff_page
    assert 'value="export"' in steward_page and 'value="consent:write"' not in steward_page


@pytest.mark.parametrize(("role", "scope"), [
    (Role.STAFF, TokenScope.EXPORT), (Role.STAFF, TokenScope.LEDGER_READ),
    (Role.AUDITOR, TokenScope.CONSENT_WRITE), (Role.STEWARD, TokenScope.CONSENT_WRITE),
    (Role.PATIENT, TokenScope.CONSENT_READ), (None, TokenScope.CONSENT_READ),
])
def test_the_service_refuses_a_scope_beyond_the_owners_roles(db, role, scope):
    owner = make_user("owner", role)
    with pytest.raises(ValidationError) as refused:
        api_token_create(owner=owner, name="x", scopes=[scope], actor=ADMIN)
    assert scope in refused.value.message_dict["scopes"][0]
    assert ApiToken.objects.count() == 0


def test_the_command_refuses_a_scope_beyond_the_owners_roles(staff):
    with pytest.raises(CommandError, match="do not allow export"):
        call_command("create_api_token", "--owner", staff.username, "--name", "x",
                     "--scope", "export", stdout=StringIO(), stderr=StringIO())
    assert ApiToken.objects.count() == 0


def test_a_token_stops_working_the_moment_its_owner_loses_the_role(steward, staff):
    exporter = api_with_token(steward, "export")
    reader = api_with_token(staff, "consent:read")
    assert exporter.get("/api/v1/datasets").status_code == 200
    assert reader.get("/api/v1/studies").status_code == 200

    steward.groups.remove(Group.objects.get(name=Role.STEWARD))
    staff.groups.clear()

    refused = exporter.get("/api/v1/datasets")
    assert refused.status_code == 403
    assert "no longer holds a role" in refused.json()["error"]["message"]
    assert reader.get("/api/v1/studies").status_code == 403
    assert reader.post("/api/v1/consent-checks", {"purpose": "research",
                                                  "study_instance_uids": ["1.2.3"]},
                       format="json").status_code == 403


def test_an_inactive_owners_token_is_refused(staff):
    reader = api_with_token(staff, "consent:read")
    staff.is_active = False
    staff.save()
    assert reader.get("/api/v1/studies").status_code == 401


def test_admins_list_every_token_and_revoke_any_with_a_ledger_event(staff, steward):
    admin = make_user("root")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    api_token_create(owner=staff, name="router", scopes=["ingest"], actor=ADMIN)
    theirs, _ = api_token_create(owner=steward, name="platform", scopes=["export"],
                                 actor=ADMIN)
    steward.groups.clear()
    client = signed_in(admin)
    page = client.get("/tokens/all/").content.decode()
    assert "router" in page and "platform" in page
    assert "disabled:</strong> export" in page
    client.post("/tokens/all/", {"token": theirs.pk})
    theirs.refresh_from_db()
    assert theirs.revoked_at is not None
    event = AuditEvent.objects.get(action="api_token.revoked")
    assert event.actor_label == "root" and event.details["owner"] == steward.username


def test_only_admins_see_every_token(staff, steward, auditor):
    for user in (staff, steward, auditor):
        assert signed_in(user).get("/tokens/all/").status_code == 302  # to sign-in


def test_the_admin_revokes_through_the_service(staff):
    admin = make_user("root")
    admin.is_superuser = admin.is_staff = True
    admin.save()
    token, _ = api_token_create(owner=staff, name="router", scopes=["ingest"], actor=ADMIN)
    response = signed_in(admin).post("/admin/access/apitoken/", {
        "action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoked").count() == 1


def test_an_endpoint_cannot_let_a_session_reach_more_than_the_table_allows():
    assert TokenScope.EXPORT not in ROLE_SCOPES[Role.STAFF]
    with pytest.raises(ImproperlyConfigured):
        scoped(TokenScope.EXPORT, Role.STEWARD, Role.STAFF)
