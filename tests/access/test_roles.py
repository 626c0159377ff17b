"""Roles and their grants: scopes follow roles, grants and revocations are ledger events,
and doing either twice changes nothing the second time."""

from django.contrib.auth.models import AnonymousUser, Group

from access.grants import role_grant, role_revoke, roles_set
from access.roles import Role, allowed_scopes, has_role, user_roles
from audit.ledger import Actor
from audit.models import AuditEvent
from tests.conftest import make_user

ADMIN = Actor(label="admin", role="admin")


def test_nobody_signed_in_has_no_role_and_no_scope():
    anonymous = AnonymousUser()
    assert user_roles(anonymous) == set()
    assert not has_role(anonymous, Role.STAFF, Role.AUDITOR)
    assert allowed_scopes(anonymous) == frozenset()


def test_a_deactivated_user_keeps_roles_but_loses_every_scope(db):
    user = make_user("sam", Role.STAFF)
    assert "consent:write" in allowed_scopes(user)
    user.is_active = False
    assert has_role(user, Role.STAFF)
    assert allowed_scopes(user) == frozenset()


def test_granting_a_role_twice_writes_one_event(db):
    user = make_user("ann")
    assert role_grant(user=user, role=Role.AUDITOR, actor=ADMIN) is True
    assert role_grant(user=user, role=Role.AUDITOR, actor=ADMIN) is False
    assert AuditEvent.objects.filter(action="role.granted").count() == 1
    assert user_roles(user) == {Role.AUDITOR}


def test_revoking_a_role_not_held_changes_nothing(db):
    user = make_user("ben", Role.STAFF)
    before = AuditEvent.objects.count()
    assert role_revoke(user=user, role=Role.AUDITOR, actor=ADMIN) is False
    assert role_revoke(user=user, role="no-such-role", actor=ADMIN) is False
    assert AuditEvent.objects.count() == before
    assert user_roles(user) == {Role.STAFF}


def test_setting_roles_revokes_and_grants_one_at_a_time(db):
    user = make_user("cat", Role.STAFF)
    auditor = Group.objects.get_or_create(name=Role.AUDITOR)[0]
    roles_set(user=user, groups=[auditor], actor=ADMIN)
    assert user_roles(user) == {Role.AUDITOR}
    assert "consent:write" not in allowed_scopes(user)
    actions = list(AuditEvent.objects.filter(action__startswith="role.").order_by("pk")
                   .values_list("action", flat=True))
    assert actions == ["role.granted", "role.revoked", "role.granted"]
